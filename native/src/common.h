// Shared helpers for the enclavekit addon: errors shaped like Node's own system errors, and the
// per-environment state (one per main thread / worker, kept with SetInstanceData).
#pragma once
#include <napi.h>
#include <uv.h>
#include <string>
#include <unordered_set>

namespace ek {

class Sock;

struct EnvState {
  Napi::FunctionReference sockCtor;
  // Every open socket of this environment, so env teardown can close what JS forgot.
  std::unordered_set<Sock*> live;
  uv_loop_t* loop = nullptr;
};

EnvState* State(Napi::Env env);

// An Error like Node's: message "<syscall> <CODE>: <strerror>[ <detail>]", code (uv_err_name),
// errno (negative, as Node sets it) and syscall.
Napi::Error SysError(Napi::Env env, int err, const char* syscall, const std::string& detail = "");

void InitSocket(Napi::Env env, Napi::Object exports);
void InitDevices(Napi::Env env, Napi::Object exports);
void InitGcm(Napi::Env env, Napi::Object exports);

}  // namespace ek
