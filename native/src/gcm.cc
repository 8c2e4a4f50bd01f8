// Batched AES-256-GCM decryption against the OpenSSL inside Node (node exports the EVP_* symbols;
// the addon links no crypto library of its own). One EVP_CIPHER_CTX per call: the key schedule is
// set once and each field only re-initialises the IV.
//
// Table layout: 8 uint32 per field
//   [ivOff, ivLen, ctOff, ctLen, tagOff, tagLen, aadOff, aadLen]  (offsets into `input`)
// Plaintext i is written to `out` at the running sum of the previous ctLen values; ok[i] = 1 when the
// tag verified. A failed field's plaintext bytes are wiped: unauthenticated plaintext never leaves.
#include "common.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace ek {

static constexpr uint32_t kStride = 8;
static constexpr uint32_t kIvLen = 12;
static constexpr uint32_t kTagLen = 16;
static constexpr uint32_t kKeyLen = 32;

struct Batch {
  const uint8_t* key;
  const uint8_t* in;
  const uint32_t* table;
  uint32_t count;
  uint8_t* out;
  uint8_t* ok;
};

static bool IsU8(const Napi::Value& v) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
}

// Checks every range before any decryption, so a bad table does no partial work.
static bool Parse(const Napi::CallbackInfo& info, Batch* b) {
  Napi::Env env = info.Env();
  if (!IsU8(info[0]) || !IsU8(info[1]) || !info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array || !IsU8(info[3]) || !IsU8(info[4])) {
    Napi::TypeError::New(env, "gcmDecryptBatch(key, input, table: Uint32Array, out, ok)").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Uint8Array key = info[0].As<Napi::Uint8Array>();
  Napi::Uint8Array in = info[1].As<Napi::Uint8Array>();
  Napi::Uint32Array table = info[2].As<Napi::Uint32Array>();
  Napi::Uint8Array out = info[3].As<Napi::Uint8Array>();
  Napi::Uint8Array ok = info[4].As<Napi::Uint8Array>();
  if (key.ByteLength() != kKeyLen) {
    Napi::RangeError::New(env, "\"key\" expected Uint8Array of length 32").ThrowAsJavaScriptException();
    return false;
  }
  if (table.ElementLength() % kStride != 0) {
    Napi::RangeError::New(env, "\"table\" length must be a multiple of 8").ThrowAsJavaScriptException();
    return false;
  }
  uint32_t count = static_cast<uint32_t>(table.ElementLength() / kStride);
  if (ok.ByteLength() < count) {
    Napi::RangeError::New(env, "\"ok\" is shorter than the field count").ThrowAsJavaScriptException();
    return false;
  }
  const uint32_t* t = table.Data();
  uint64_t inLen = in.ByteLength();
  uint64_t outTotal = 0;
  for (uint32_t i = 0; i < count; i++) {
    const uint32_t* f = t + static_cast<size_t>(i) * kStride;
    if (f[1] != kIvLen || f[5] != kTagLen) {
      Napi::RangeError::New(env, "field " + std::to_string(i) + ": IV must be 12 bytes and tag 16 bytes")
          .ThrowAsJavaScriptException();
      return false;
    }
    for (int k = 0; k < 8; k += 2) {
      if (static_cast<uint64_t>(f[k]) + f[k + 1] > inLen) {
        Napi::RangeError::New(env, "field " + std::to_string(i) + ": range outside input").ThrowAsJavaScriptException();
        return false;
      }
    }
    if (f[3] > INT32_MAX || f[7] > INT32_MAX) {
      Napi::RangeError::New(env, "field too large").ThrowAsJavaScriptException();
      return false;
    }
    outTotal += f[3];
  }
  if (outTotal > out.ByteLength()) {
    Napi::RangeError::New(env, "\"out\" is shorter than the total ciphertext length").ThrowAsJavaScriptException();
    return false;
  }
  b->key = key.Data();
  b->in = in.Data();
  b->table = t;
  b->count = count;
  b->out = out.Data();
  b->ok = ok.Data();
  return true;
}

// Returns the number of fields that verified, or -1 if OpenSSL could not set up the context.
static int64_t Run(const Batch& b, EVP_CIPHER_CTX* ctx) {
  int64_t good = 0;
  uint8_t* o = b.out;
  for (uint32_t i = 0; i < b.count; i++) {
    const uint32_t* f = b.table + static_cast<size_t>(i) * kStride;
    const uint8_t* iv = b.in + f[0];
    const uint8_t* ct = b.in + f[2];
    const uint8_t* tag = b.in + f[4];
    const uint8_t* aad = b.in + f[6];
    int ctLen = static_cast<int>(f[3]);
    int aadLen = static_cast<int>(f[7]);
    int len = 0;
    bool pass = EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, iv) == 1;
    if (pass && aadLen > 0) pass = EVP_DecryptUpdate(ctx, nullptr, &len, aad, aadLen) == 1;
    if (pass && ctLen > 0) pass = EVP_DecryptUpdate(ctx, o, &len, ct, ctLen) == 1;
    if (pass) pass = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTagLen, const_cast<uint8_t*>(tag)) == 1;
    if (pass) pass = EVP_DecryptFinal_ex(ctx, o + (ctLen > 0 ? ctLen : 0), &len) == 1;
    if (!pass && ctLen > 0) OPENSSL_cleanse(o, static_cast<size_t>(ctLen));
    b.ok[i] = pass ? 1 : 0;
    good += pass ? 1 : 0;
    o += ctLen;
  }
  return good;
}

static EVP_CIPHER_CTX* NewCtx(const uint8_t* key) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return nullptr;
  if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, kIvLen, nullptr) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

// gcmDecryptBatch(key, input, table, out, ok) -> number of fields that verified
static Napi::Value DecryptBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Batch b;
  if (!Parse(info, &b)) return env.Undefined();
  EVP_CIPHER_CTX* ctx = NewCtx(b.key);
  if (ctx == nullptr) {
    Napi::Error::New(env, "OpenSSL could not initialise AES-256-GCM").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int64_t good = Run(b, ctx);
  EVP_CIPHER_CTX_free(ctx);  // frees (and cleanses) the key schedule
  return Napi::Number::New(env, static_cast<double>(good));
}

// gcmCeiling(key, input, table, out, ok, reps): the same loop `reps` times in C, for the benchmark's
// upper bound (no JavaScript between fields or batches).
static Napi::Value Ceiling(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Batch b;
  if (!Parse(info, &b)) return env.Undefined();
  if (!info[5].IsNumber()) {
    Napi::TypeError::New(env, "reps must be a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t reps = info[5].As<Napi::Number>().Uint32Value();
  EVP_CIPHER_CTX* ctx = NewCtx(b.key);
  if (ctx == nullptr) {
    Napi::Error::New(env, "OpenSSL could not initialise AES-256-GCM").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int64_t good = 0;
  for (uint32_t r = 0; r < reps; r++) good += Run(b, ctx);
  EVP_CIPHER_CTX_free(ctx);
  return Napi::Number::New(env, static_cast<double>(good));
}

void InitGcm(Napi::Env env, Napi::Object exports) {
  exports.Set("gcmDecryptBatch", Napi::Function::New(env, DecryptBatch, "gcmDecryptBatch"));
  exports.Set("gcmCeiling", Napi::Function::New(env, Ceiling, "gcmCeiling"));
}

}  // namespace ek
