// Stream sockets (AF_UNIX and AF_VSOCK through one code path) driven by a uv_poll_t on the calling
// environment's own loop. The JS side (native/socket.ts) turns a Sock into a Duplex; this file only
// moves bytes and reports readiness, so its state machine stays small enough to review.
//
// Events delivered to the JS callback onevent(type, a, b):
//   EV_CONNECTION (err, sock)   a listener accepted a socket (or accept failed)
//   EV_CONNECT    (err)         a pending connect finished
//   EV_READ       (err, buf)    data (buf), or end of stream (both undefined)
//   EV_WRITE      (err)         a queued write finished
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <vector>

namespace ek {

enum { EV_CONNECTION = 1, EV_CONNECT = 2, EV_READ = 3, EV_WRITE = 4 };
enum Mode { M_NONE, M_LISTEN, M_CONNECTING, M_STREAM };

static constexpr size_t kReadMin = 64 * 1024;
static constexpr size_t kReadMax = 1024 * 1024;
static constexpr int kMaxReadsPerWake = 32;
static constexpr int kMaxAcceptsPerWake = 64;

// At env teardown (a worker exiting), libuv may run close callbacks after this library has been
// unloaded, so those closes must not call back into our code: libc's free() takes the handle
// pointer directly. (Calling free through uv_close_cb's type is the usual C ABI idiom: one pointer
// argument, no result.) Handles are malloc'ed for that reason.
static uv_close_cb FreeOutsideAddon() { return reinterpret_cast<uv_close_cb>(&free); }

class Sock : public Napi::ObjectWrap<Sock> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeSocket",
                       {InstanceMethod("start", &Sock::Start), InstanceMethod("readStart", &Sock::ReadStart),
                        InstanceMethod("readStop", &Sock::ReadStop), InstanceMethod("write", &Sock::Write),
                        InstanceMethod("shutdown", &Sock::Shutdown), InstanceMethod("close", &Sock::Close),
                        InstanceMethod("address", &Sock::Address), InstanceMethod("fd", &Sock::Fd),
                        InstanceMethod("ref", &Sock::RefLoop), InstanceMethod("unref", &Sock::UnrefLoop)});
  }

  explicit Sock(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Sock>(info) {
    napi_async_init(info.Env(), info.This(), Napi::String::New(info.Env(), "enclavekit:socket"), &actx_);
  }

  ~Sock() override {
    // Only reached when JS dropped the object; normally Close() ran and the close callback freed the
    // poll handle. At env teardown the object may still be open: close the fd and let libuv free the
    // handle without calling back into us.
    if (poll_ != nullptr && !closing_) {
      poll_->data = nullptr;
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), FreeOutsideAddon());
      poll_ = nullptr;
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
    }
    if (actx_ != nullptr) napi_async_destroy(Env(), actx_);
  }

  // Attach a fresh non-blocking fd. Returns 0 or a negative errno.
  int Attach(int fd, Mode mode, int family, Napi::Function cb) {
    EnvState* st = State(Env());
    poll_ = static_cast<uv_poll_t*>(malloc(sizeof(uv_poll_t)));
    if (poll_ == nullptr) return UV_ENOMEM;
    int r = uv_poll_init(st->loop, poll_, fd);
    if (r != 0) {
      free(poll_);
      poll_ = nullptr;
      return r;
    }
    poll_->data = this;
    fd_ = fd;
    mode_ = mode;
    family_ = family;
    st->live.insert(this);
    self_ = Napi::Persistent(Value());  // an open socket must outlive its JS wrapper's last reference
    if (!cb.IsEmpty()) onevent_ = Napi::Persistent(cb);
    UpdatePoll();
    return 0;
  }

  std::string unixPath_;

  // Env teardown: close what JS left open. The loop may never run our close callback (or run it
  // after the per-env state is gone), so detach from it completely here.
  void ForceClose() {
    if (poll_ == nullptr || closing_) return;
    closing_ = true;
    reading_ = false;
    if (mode_ == M_LISTEN && !unixPath_.empty()) ::unlink(unixPath_.c_str());
    poll_->data = nullptr;
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), FreeOutsideAddon());
    poll_ = nullptr;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  int family_ = 0;
  Mode mode_ = M_NONE;
  uv_poll_t* poll_ = nullptr;
  int armed_ = 0;
  bool reading_ = false;
  bool closing_ = false;
  bool eof_ = false;
  Napi::FunctionReference onevent_;
  Napi::ObjectReference self_;
  napi_async_context actx_ = nullptr;

  // Pending write: iovecs into buffers kept alive by wref_ (the JS array holding them).
  std::vector<iovec> wq_;
  size_t wqPos_ = 0;
  bool writePending_ = false;
  Napi::ObjectReference wref_;

  // Read pool: a JS Buffer we read into; kept referenced while we hold its data pointer.
  Napi::Reference<Napi::Buffer<uint8_t>> pool_;
  size_t readSize_ = kReadMin;

  void UpdatePoll() {
    if (poll_ == nullptr || closing_) return;
    int want = 0;
    switch (mode_) {
      case M_LISTEN: want = UV_READABLE; break;
      case M_CONNECTING: want = UV_WRITABLE; break;
      case M_STREAM:
        if (reading_ && !eof_) want |= UV_READABLE;
        if (writePending_) want |= UV_WRITABLE;
        break;
      default: break;
    }
    if (want == armed_) return;
    armed_ = want;
    if (want == 0) {
      uv_poll_stop(poll_);
    } else {
      uv_poll_start(poll_, want, &Sock::OnPoll);
    }
  }

  void Emit(std::initializer_list<napi_value> args) {
    if (onevent_.IsEmpty()) return;
    Napi::Env env = Env();
    onevent_.MakeCallback(Value(), args, actx_);
    if (env.IsExceptionPending()) {
      Napi::Error e = env.GetAndClearPendingException();
      napi_fatal_exception(env, e.Value());
    }
  }

  static void OnPoll(uv_poll_t* h, int status, int events) {
    Sock* s = static_cast<Sock*>(h->data);
    if (s == nullptr || s->closing_) return;
    Napi::Env env = s->Env();
    Napi::HandleScope scope(env);
    Napi::Object keep = s->Value();  // hold the wrapper for the whole dispatch
    if (keep.IsEmpty()) return;      // the environment is shutting down
    if (status < 0) {
      // libuv turns POLLERR into UV_EBADF and stops the handle; the socket's pending error says
      // what really happened (ECONNRESET, EPIPE, ECONNREFUSED...).
      s->armed_ = 0;
      if (status == UV_EBADF && s->fd_ >= 0) {
        int so = 0;
        socklen_t sl = sizeof(so);
        if (getsockopt(s->fd_, SOL_SOCKET, SO_ERROR, &so, &sl) == 0 && so != 0) status = -so;
      }
      Napi::Value err = SysError(env, status, s->mode_ == M_LISTEN ? "accept" : s->mode_ == M_CONNECTING ? "connect" : "read").Value();
      int ev = s->mode_ == M_LISTEN ? EV_CONNECTION : s->mode_ == M_CONNECTING ? EV_CONNECT : EV_READ;
      s->reading_ = false;
      s->writePending_ = false;
      s->UpdatePoll();
      s->Emit({Napi::Number::New(env, ev), err});
      return;
    }
    switch (s->mode_) {
      case M_LISTEN: s->DoAccept(); break;
      case M_CONNECTING: s->DoConnectDone(); break;
      case M_STREAM:
        if ((events & UV_WRITABLE) && s->writePending_) s->DoFlush(true);
        if (!s->closing_ && (events & (UV_READABLE | UV_DISCONNECT)) && s->reading_) s->DoRead();
        break;
      default: break;
    }
  }

  void DoAccept() {
    Napi::Env env = Env();
    EnvState* st = State(env);
    for (int i = 0; i < kMaxAcceptsPerWake && !closing_; i++) {
      int c = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        Emit({Napi::Number::New(env, EV_CONNECTION), SysError(env, errno, "accept").Value()});
        return;
      }
      Napi::HandleScope scope(env);
      Napi::Object obj = st->sockCtor.New({});
      if (obj.IsEmpty() || env.IsExceptionPending()) {  // the environment is shutting down
        ::close(c);
        return;
      }
      Sock* child = Sock::Unwrap(obj);
      int r = child->Attach(c, M_STREAM, family_, Napi::Function());
      if (r != 0) {
        ::close(c);
        Emit({Napi::Number::New(env, EV_CONNECTION), SysError(env, r, "uv_poll_init").Value()});
        continue;
      }
      Emit({Napi::Number::New(env, EV_CONNECTION), env.Undefined(), obj});
    }
  }

  void DoConnectDone() {
    Napi::Env env = Env();
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == EINPROGRESS) return;  // spurious wake-up
    mode_ = M_STREAM;
    UpdatePoll();
    if (err != 0) {
      Emit({Napi::Number::New(env, EV_CONNECT), SysError(env, err, "connect").Value()});
    } else {
      Emit({Napi::Number::New(env, EV_CONNECT), env.Undefined()});
    }
  }

  void DoRead() {
    Napi::Env env = Env();
    for (int i = 0; i < kMaxReadsPerWake && reading_ && !closing_; i++) {
      Napi::HandleScope scope(env);
      if (pool_.IsEmpty()) pool_ = Napi::Reference<Napi::Buffer<uint8_t>>::New(Napi::Buffer<uint8_t>::New(env, readSize_), 1);
      Napi::Buffer<uint8_t> pool = pool_.Value();
      size_t cap = pool.Length();
      ssize_t n = ::read(fd_, pool.Data(), cap);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        int e = errno;
        reading_ = false;
        UpdatePoll();
        Emit({Napi::Number::New(env, EV_READ), SysError(env, e, "read").Value()});
        return;
      }
      if (n == 0) {
        eof_ = true;
        reading_ = false;
        UpdatePoll();
        Emit({Napi::Number::New(env, EV_READ), env.Undefined(), env.Undefined()});
        return;
      }
      Napi::Value out;
      if (static_cast<size_t>(n) * 2 >= cap) {
        // Hand the pool itself to JS (no copy); JS slices it to n bytes. Next read gets a new pool.
        out = pool;
        pool_.Reset();
        if (static_cast<size_t>(n) == cap && readSize_ < kReadMax) readSize_ *= 2;
      } else {
        out = Napi::Buffer<uint8_t>::Copy(env, pool.Data(), static_cast<size_t>(n));
      }
      Emit({Napi::Number::New(env, EV_READ), env.Undefined(), out, Napi::Number::New(env, static_cast<double>(n))});
      if (static_cast<size_t>(n) < cap) return;  // the socket is most likely drained
    }
  }

  // Returns 0 when everything queued is written, EAGAIN when some is left, else an errno.
  int FlushSome() {
    while (wqPos_ < wq_.size()) {
      struct msghdr msg;
      memset(&msg, 0, sizeof(msg));
      msg.msg_iov = &wq_[wqPos_];
      size_t left = wq_.size() - wqPos_;
      msg.msg_iovlen = left > IOV_MAX ? IOV_MAX : left;
      ssize_t n = sendmsg(fd_, &msg, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return EAGAIN;
        return errno;
      }
      size_t m = static_cast<size_t>(n);
      while (m > 0 && wqPos_ < wq_.size()) {
        iovec& v = wq_[wqPos_];
        if (m >= v.iov_len) {
          m -= v.iov_len;
          wqPos_++;
        } else {
          v.iov_base = static_cast<char*>(v.iov_base) + m;
          v.iov_len -= m;
          m = 0;
        }
      }
      while (wqPos_ < wq_.size() && wq_[wqPos_].iov_len == 0) wqPos_++;
    }
    return 0;
  }

  void DoFlush(bool emit) {
    Napi::Env env = Env();
    int r = FlushSome();
    if (r == EAGAIN) return;
    writePending_ = false;
    wq_.clear();
    wqPos_ = 0;
    wref_.Reset();
    UpdatePoll();
    if (!emit) return;
    if (r != 0) {
      Emit({Napi::Number::New(env, EV_WRITE), SysError(env, r, "write").Value()});
    } else {
      Emit({Napi::Number::New(env, EV_WRITE), env.Undefined()});
    }
  }

  void DoClose() {
    if (closing_ || poll_ == nullptr) return;
    closing_ = true;
    // Unlink now, not in the close callback, so the path is free as soon as close() returns (as
    // with libuv pipes).
    if (mode_ == M_LISTEN && !unixPath_.empty()) ::unlink(unixPath_.c_str());
    unixPath_.clear();
    reading_ = false;
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), &Sock::OnClose);
  }

  static void OnClose(uv_handle_t* h) {
    Sock* s = static_cast<Sock*>(h->data);
    free(h);
    if (s == nullptr) return;
    s->poll_ = nullptr;
    if (s->fd_ >= 0) ::close(s->fd_);
    s->fd_ = -1;
    s->wq_.clear();
    s->wref_.Reset();
    s->pool_.Reset();
    s->onevent_.Reset();
    State(s->Env())->live.erase(s);
    s->self_.Reset();  // from here on the GC may collect the wrapper
  }

  // ---- JS methods ----
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (!info[0].IsFunction()) {
      Napi::TypeError::New(info.Env(), "start(callback) expects a function").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    onevent_ = Napi::Persistent(info[0].As<Napi::Function>());
    return info.Env().Undefined();
  }

  Napi::Value ReadStart(const Napi::CallbackInfo& info) {
    if (!closing_ && mode_ == M_STREAM && !eof_) {
      reading_ = true;
      UpdatePoll();
    }
    return info.Env().Undefined();
  }

  Napi::Value ReadStop(const Napi::CallbackInfo& info) {
    reading_ = false;
    UpdatePoll();
    return info.Env().Undefined();
  }

  // write(chunks: Uint8Array[]) -> 0 written, 1 pending (EV_WRITE follows), or an Error (not thrown).
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closing_ || mode_ != M_STREAM) return SysError(env, EBADF, "write").Value();
    if (writePending_) {
      Napi::Error::New(env, "write while a write is pending").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!info[0].IsArray()) {
      Napi::TypeError::New(env, "write(chunks) expects an array of Uint8Array").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Array arr = info[0].As<Napi::Array>();
    uint32_t n = arr.Length();
    wq_.clear();
    wq_.reserve(n);
    for (uint32_t i = 0; i < n; i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
        wq_.clear();
        Napi::TypeError::New(env, "write(chunks) expects an array of Uint8Array").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      Napi::Uint8Array u = v.As<Napi::Uint8Array>();
      if (u.ByteLength() == 0) continue;
      wq_.push_back(iovec{u.Data(), u.ByteLength()});
    }
    wqPos_ = 0;
    int r = FlushSome();
    if (r == 0) {
      wq_.clear();
      return Napi::Number::New(env, 0);
    }
    if (r != EAGAIN) {
      wq_.clear();
      return SysError(env, r, "write").Value();
    }
    wref_ = Napi::Persistent(arr.As<Napi::Object>());  // the array keeps every queued chunk alive
    writePending_ = true;
    UpdatePoll();
    return Napi::Number::New(env, 1);
  }

  Napi::Value Shutdown(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closing_ || fd_ < 0) return SysError(env, EBADF, "shutdown").Value();
    if (::shutdown(fd_, SHUT_WR) != 0) return SysError(env, errno, "shutdown").Value();
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    DoClose();
    return info.Env().Undefined();
  }

  Napi::Value Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

  // As with net: an unref'ed socket does not keep the event loop alive on its own.
  Napi::Value RefLoop(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr && !closing_) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }
  Napi::Value UnrefLoop(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr && !closing_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  Napi::Value Address(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) return env.Null();
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      SysError(env, errno, "getsockname").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Object o = Napi::Object::New(env);
    if (ss.ss_family == AF_VSOCK) {
      auto* vm = reinterpret_cast<sockaddr_vm*>(&ss);
      o.Set("family", "vsock");
      o.Set("cid", Napi::Number::New(env, vm->svm_cid));
      o.Set("port", Napi::Number::New(env, vm->svm_port));
    } else if (ss.ss_family == AF_UNIX) {
      auto* un = reinterpret_cast<sockaddr_un*>(&ss);
      size_t plen = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
      std::string p(un->sun_path, strnlen(un->sun_path, plen));
      o.Set("family", "unix");
      o.Set("path", p);
    } else {
      o.Set("family", "unknown");
    }
    return o;
  }
};

// ---- factories ----

static bool GetU32(const Napi::CallbackInfo& info, size_t i, uint32_t* out) {
  if (!info[i].IsNumber()) return false;
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint32_t>(d))) return false;
  *out = static_cast<uint32_t>(d);
  return true;
}

// Fill a sockaddr from (family, args...) where args are (path) or (cid, port) starting at index i.
static bool BuildAddr(const Napi::CallbackInfo& info, int family, size_t i, sockaddr_storage* ss, socklen_t* len,
                      std::string* path) {
  memset(ss, 0, sizeof(*ss));
  if (family == AF_UNIX) {
    if (!info[i].IsString()) return false;
    *path = info[i].As<Napi::String>().Utf8Value();
    auto* un = reinterpret_cast<sockaddr_un*>(ss);
    if (path->empty() || path->size() >= sizeof(un->sun_path) || path->find('\0') != std::string::npos) return false;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path->data(), path->size());
    *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path->size() + 1);
    return true;
  }
  uint32_t cid, port;
  if (!GetU32(info, i, &cid) || !GetU32(info, i + 1, &port)) return false;
  auto* vm = reinterpret_cast<sockaddr_vm*>(ss);
  vm->svm_family = AF_VSOCK;
  vm->svm_cid = cid;
  vm->svm_port = port;
  *len = sizeof(sockaddr_vm);
  return true;
}

static int FamilyOf(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) return -1;
  std::string f = info[0].As<Napi::String>().Utf8Value();
  if (f == "unix") return AF_UNIX;
  if (f == "vsock") return AF_VSOCK;
  return -1;
}

// Hands a new descriptor to a fresh Sock. On failure the descriptor is closed and undefined is
// returned with the JS exception pending. `unixPath` is set for listeners only: they unlink it on close.
static Napi::Value AdoptFd(Napi::Env env, int fd, Mode mode, int family, Napi::Function onevent,
                           const std::string& unixPath) {
  Napi::Object obj = State(env)->sockCtor.New({});
  if (obj.IsEmpty()) {
    ::close(fd);
    return env.Undefined();
  }
  Sock* s = Sock::Unwrap(obj);
  s->unixPath_ = unixPath;
  int r = s->Attach(fd, mode, family, onevent);
  if (r != 0) {
    ::close(fd);
    SysError(env, r, "uv_poll_init").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return obj;
}

// listen(family, ...addr, backlog, onevent) -> Sock
static Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int family = FamilyOf(info);
  sockaddr_storage ss;
  socklen_t len = 0;
  std::string path;
  size_t next = family == AF_UNIX ? 2 : 3;
  uint32_t backlog;
  if (family < 0 || !BuildAddr(info, family, 1, &ss, &len, &path) || !GetU32(info, next, &backlog) ||
      !info[next + 1].IsFunction()) {
    Napi::TypeError::New(env, "listen: invalid arguments").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    SysError(env, errno, "socket").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int e = errno;
    ::close(fd);
    SysError(env, e, "bind", path).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (listen(fd, static_cast<int>(backlog > 65535 ? 65535 : backlog)) != 0) {
    int e = errno;
    ::close(fd);
    if (family == AF_UNIX) ::unlink(path.c_str());
    SysError(env, e, "listen", path).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return AdoptFd(env, fd, M_LISTEN, family, info[next + 1].As<Napi::Function>(), path);
}

// connect(family, ...addr, onevent) -> Sock; EV_CONNECT follows.
static Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int family = FamilyOf(info);
  sockaddr_storage ss;
  socklen_t len = 0;
  std::string path;
  size_t next = family == AF_UNIX ? 2 : 3;
  if (family < 0 || !BuildAddr(info, family, 1, &ss, &len, &path) || !info[next].IsFunction()) {
    Napi::TypeError::New(env, "connect: invalid arguments").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    SysError(env, errno, "socket").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0 && errno != EINPROGRESS) {
    int e = errno;
    ::close(fd);
    SysError(env, e, "connect", path).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Even an immediate connect reports through EV_CONNECT, so callers see one asynchronous shape.
  // No path: only a listener owns (and unlinks) its socket file.
  return AdoptFd(env, fd, M_CONNECTING, family, info[next].As<Napi::Function>(), std::string());
}

static void CleanupEnv(void* arg) {
  auto* st = static_cast<EnvState*>(arg);
  std::vector<Sock*> open(st->live.begin(), st->live.end());
  st->live.clear();
  for (Sock* s : open) s->ForceClose();
}

void InitSocket(Napi::Env env, Napi::Object exports) {
  EnvState* st = State(env);
  Napi::Function ctor = Sock::Define(env);
  st->sockCtor = Napi::Persistent(ctor);
  napi_add_env_cleanup_hook(env, CleanupEnv, st);
  exports.Set("listen", Napi::Function::New(env, Listen, "listen"));
  exports.Set("connect", Napi::Function::New(env, Connect, "connect"));
  Napi::Object ev = Napi::Object::New(env);
  ev.Set("CONNECTION", Napi::Number::New(env, EV_CONNECTION));
  ev.Set("CONNECT", Napi::Number::New(env, EV_CONNECT));
  ev.Set("READ", Napi::Number::New(env, EV_READ));
  ev.Set("WRITE", Napi::Number::New(env, EV_WRITE));
  exports.Set("socketEvents", ev);
}

}  // namespace ek
