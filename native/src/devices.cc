// The two TEE guest devices. Each request opens the device, issues one ioctl on a worker thread (an
// attestation can take milliseconds; the event loop must not wait) and closes it again, so no fd
// outlives a request. Request bytes are copied before the worker starts: JS may reuse its buffer.
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <vector>

namespace ek {

// include/uapi/linux/nsm.h (same ABI as aws-nitro-enclaves-nsm-api src/driver/mod.rs)
struct nsm_iovec {
  uint64_t addr;
  uint64_t len;
};
struct nsm_raw {
  nsm_iovec request;
  nsm_iovec response;
};
static_assert(sizeof(nsm_raw) == 32, "nsm_raw ABI");
static constexpr unsigned long kNsmIoctlRaw = _IOWR(0x0A, 0x0, nsm_raw);
static_assert(_IOWR(0x0A, 0x0, nsm_raw) == 0xC0200A00UL, "NSM_IOCTL_RAW");
static constexpr size_t kNsmRequestMax = 0x1000;
static constexpr size_t kNsmResponseMax = 0x3000;

// include/uapi/linux/sev-guest.h
struct snp_report_req {
  uint8_t user_data[64];
  uint32_t vmpl;
  uint8_t rsvd[28];
};
static_assert(sizeof(snp_report_req) == 96, "snp_report_req ABI");
struct snp_ext_report_req {
  snp_report_req data;
  uint64_t certs_address;
  uint32_t certs_len;
};
struct snp_guest_request_ioctl {
  uint8_t msg_version;
  uint64_t req_data;
  uint64_t resp_data;
  uint64_t exitinfo2;
};
static_assert(sizeof(snp_guest_request_ioctl) == 32, "snp_guest_request_ioctl ABI");
static constexpr unsigned long kSnpGetExtReport = _IOWR('S', 0x2, snp_guest_request_ioctl);
static_assert(_IOWR('S', 0x2, snp_guest_request_ioctl) == 0xC0205302UL, "SNP_GET_EXT_REPORT");
static constexpr size_t kSnpRespSize = 4000;
static constexpr uint32_t kSnpVmmErrInvalidLen = 1;
static constexpr uint32_t kSnpCertsMax = 1u << 20;  // far above the kernel's own limit; bounds our allocation

class NsmWorker : public Napi::AsyncWorker {
 public:
  NsmWorker(Napi::Env env, std::string path, const uint8_t* req, size_t len)
      : Napi::AsyncWorker(env, "enclavekit:nsm"), deferred_(Napi::Promise::Deferred::New(env)), path_(std::move(path)),
        req_(req, req + len), resp_(kNsmResponseMax) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    int fd = open(path_.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      err_ = errno;
      syscall_ = "open";
      return;
    }
    nsm_raw raw;
    raw.request.addr = reinterpret_cast<uintptr_t>(req_.data());
    raw.request.len = req_.size();
    raw.response.addr = reinterpret_cast<uintptr_t>(resp_.data());
    raw.response.len = resp_.size();
    int rc;
    do {
      rc = ioctl(fd, kNsmIoctlRaw, &raw);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      err_ = errno;
      syscall_ = "ioctl";
    } else if (raw.response.len > resp_.size()) {
      err_ = EMSGSIZE;
      syscall_ = "ioctl";
    } else {
      resp_.resize(raw.response.len);
    }
    close(fd);
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      deferred_.Reject(SysError(env, err_, syscall_, path_).Value());
    } else {
      deferred_.Resolve(Napi::Buffer<uint8_t>::Copy(env, resp_.data(), resp_.size()));
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  std::vector<uint8_t> req_;
  std::vector<uint8_t> resp_;
  int err_ = 0;
  const char* syscall_ = "";
};

// nsmRequest(path: string, request: Uint8Array) -> Promise<Buffer>
static Napi::Value NsmRequest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    Napi::TypeError::New(env, "nsmRequest(path, request: Uint8Array)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array req = info[1].As<Napi::Uint8Array>();
  if (req.ByteLength() == 0 || req.ByteLength() > kNsmRequestMax) {
    Napi::RangeError::New(env, "NSM request must be 1..4096 bytes").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* w = new NsmWorker(env, info[0].As<Napi::String>().Utf8Value(), req.Data(), req.ByteLength());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

class SnpWorker : public Napi::AsyncWorker {
 public:
  SnpWorker(Napi::Env env, std::string path, const uint8_t* reportData, uint32_t vmpl, uint32_t certsLen)
      : Napi::AsyncWorker(env, "enclavekit:sev-guest"), deferred_(Napi::Promise::Deferred::New(env)),
        path_(std::move(path)), vmpl_(vmpl), certsLen_(certsLen), resp_(kSnpRespSize) {
    memcpy(reportData_, reportData, 64);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    int fd = open(path_.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      err_ = errno;
      syscall_ = "open";
      return;
    }
    // One retry: a too-small certificate buffer fails with vmm_error INVALID_LEN and the kernel
    // writes the size it needs back into certs_len.
    for (int attempt = 0; attempt < 2; attempt++) {
      certs_.assign(certsLen_, 0);
      snp_ext_report_req req;
      memset(&req, 0, sizeof(req));
      memcpy(req.data.user_data, reportData_, 64);
      req.data.vmpl = vmpl_;
      req.certs_address = certsLen_ ? reinterpret_cast<uintptr_t>(certs_.data()) : 0;
      req.certs_len = certsLen_;
      snp_guest_request_ioctl io;
      memset(&io, 0, sizeof(io));
      io.msg_version = 1;
      io.req_data = reinterpret_cast<uintptr_t>(&req);
      io.resp_data = reinterpret_cast<uintptr_t>(resp_.data());
      int rc;
      do {
        rc = ioctl(fd, kSnpGetExtReport, &io);
      } while (rc != 0 && errno == EINTR);
      exitinfo2_ = io.exitinfo2;
      if (rc == 0) {
        err_ = 0;
        break;
      }
      err_ = errno;
      syscall_ = "ioctl";
      uint32_t vmmErr = static_cast<uint32_t>(io.exitinfo2 >> 32);
      if (vmmErr != kSnpVmmErrInvalidLen || req.certs_len <= certsLen_ || req.certs_len > kSnpCertsMax) break;
      certsLen_ = req.certs_len;
    }
    close(fd);
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      Napi::Error e = SysError(env, err_, syscall_, path_);
      e.Set("fwError", Napi::Number::New(env, static_cast<double>(exitinfo2_ & 0xffffffffu)));
      e.Set("vmmError", Napi::Number::New(env, static_cast<double>(exitinfo2_ >> 32)));
      deferred_.Reject(e.Value());
      return;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("response", Napi::Buffer<uint8_t>::Copy(env, resp_.data(), resp_.size()));
    o.Set("certs", Napi::Buffer<uint8_t>::Copy(env, certs_.data(), certs_.size()));
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  uint8_t reportData_[64];
  uint32_t vmpl_;
  uint32_t certsLen_;
  std::vector<uint8_t> resp_;
  std::vector<uint8_t> certs_;
  uint64_t exitinfo2_ = 0;
  int err_ = 0;
  const char* syscall_ = "";
};

// snpGetExtReport(path, reportData: Uint8Array(64), vmpl, certsLen) -> Promise<{response, certs}>
static Napi::Value SnpGetExtReport(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array || !info[2].IsNumber() ||
      !info[3].IsNumber()) {
    Napi::TypeError::New(env, "snpGetExtReport(path, reportData, vmpl, certsLen)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array rd = info[1].As<Napi::Uint8Array>();
  uint32_t vmpl = info[2].As<Napi::Number>().Uint32Value();
  uint32_t certsLen = info[3].As<Napi::Number>().Uint32Value();
  if (rd.ByteLength() != 64 || vmpl > 3 || certsLen > kSnpCertsMax || (certsLen & 0xfff) != 0) {
    Napi::RangeError::New(env, "snpGetExtReport: reportData must be 64 bytes, vmpl 0..3, certsLen page-aligned")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* w = new SnpWorker(env, info[0].As<Napi::String>().Utf8Value(), rd.Data(), vmpl, certsLen);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

void InitDevices(Napi::Env env, Napi::Object exports) {
  exports.Set("nsmRequest", Napi::Function::New(env, NsmRequest, "nsmRequest"));
  exports.Set("snpGetExtReport", Napi::Function::New(env, SnpGetExtReport, "snpGetExtReport"));
}

}  // namespace ek
