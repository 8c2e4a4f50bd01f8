#include "common.h"

namespace ek {

EnvState* State(Napi::Env env) { return env.GetInstanceData<EnvState>(); }

Napi::Error SysError(Napi::Env env, int err, const char* syscall, const std::string& detail) {
  // libuv's error names and texts take the negated errno on Unix.
  int uverr = err > 0 ? -err : err;
  std::string msg = std::string(syscall) + " " + uv_err_name(uverr) + ": " + uv_strerror(uverr);
  if (!detail.empty()) msg += " " + detail;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, uv_err_name(uverr)));
  e.Set("errno", Napi::Number::New(env, uverr));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* st = new EnvState();
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    delete st;
    Napi::Error::New(env, "enclavekit native: no libuv loop for this environment").ThrowAsJavaScriptException();
    return exports;
  }
  st->loop = loop;
  env.SetInstanceData<EnvState>(st);
  InitSocket(env, exports);
  InitDevices(env, exports);
  InitGcm(env, exports);
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  return exports;
}

}  // namespace ek

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return ek::Init(env, exports); }
NODE_API_MODULE(enclavekit_native, InitAddon)
