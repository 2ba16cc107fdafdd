// Resumable SHA-256 on the OpenSSL that the node binary already carries (SHA-NI where the CPU has it).
// The running state is exported in Wharf's portable form (see libs/registry/sha256-state.ts):
//   4 bytes magic "ws2\x01" | 8 state words, big-endian | u64 byte count, big-endian | pending bytes (count % 64)
// so a session hashed here can be resumed by the hash-wasm fallback on another node, and back.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#define NAPI_VERSION 8
#include <node_api.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC_LEN 4
#define HEADER_LEN (MAGIC_LEN + 32 + 8)
static const uint8_t MAGIC[MAGIC_LEN] = {'w', 's', '2', 1};

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, NULL, "sha256 addon: " #call " failed");  \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

static void free_ctx(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static napi_value wrap(napi_env env, SHA256_CTX *ctx) {
  napi_value out;
  if (napi_create_external(env, ctx, free_ctx, NULL, &out) != napi_ok) {
    free(ctx);
    napi_throw_error(env, NULL, "sha256 addon: cannot wrap a context");
    return NULL;
  }
  return out;
}

static SHA256_CTX *unwrap(napi_env env, napi_value value) {
  void *ctx = NULL;
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external ||
      napi_get_value_external(env, value, &ctx) != napi_ok || ctx == NULL) {
    napi_throw_type_error(env, NULL, "expected a sha256 context");
    return NULL;
  }
  return (SHA256_CTX *)ctx;
}

static int bytes_of(napi_env env, napi_value value, uint8_t **data, size_t *len) {
  bool is;
  if (napi_is_typedarray(env, value, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t length, offset;
    napi_value ab;
    void *p;
    if (napi_get_typedarray_info(env, value, &type, &length, &p, &ab, &offset) != napi_ok || type != napi_uint8_array) return 0;
    *data = p;
    *len = length;
    return 1;
  }
  return 0;
}

static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

// create(state?: Uint8Array) -> context; no state: a fresh hash.
static napi_value create(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  SHA256_CTX *ctx = calloc(1, sizeof(SHA256_CTX));
  if (!ctx) { napi_throw_error(env, NULL, "out of memory"); return NULL; }
  SHA256_Init(ctx);
  napi_valuetype type = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &type);
  if (type == napi_undefined || type == napi_null) return wrap(env, ctx);

  uint8_t *s;
  size_t len;
  if (!bytes_of(env, argv[0], &s, &len) || len < HEADER_LEN || memcmp(s, MAGIC, MAGIC_LEN) != 0) {
    free(ctx);
    napi_throw_error(env, "ERR_SHA256_STATE", "not a portable sha256 state");
    return NULL;
  }
  uint64_t count = 0;
  for (int i = 0; i < 8; i++) count = count << 8 | s[MAGIC_LEN + 32 + i];
  size_t pending = (size_t)(count & 63);
  if (len != HEADER_LEN + pending || count >> 61) {
    free(ctx);
    napi_throw_error(env, "ERR_SHA256_STATE", "not a portable sha256 state");
    return NULL;
  }
  for (int i = 0; i < 8; i++) ctx->h[i] = get32(s + MAGIC_LEN + 4 * i);
  ctx->Nl = (SHA_LONG)(count << 3);
  ctx->Nh = (SHA_LONG)(count >> 29);
  ctx->num = (unsigned int)pending;
  memcpy(ctx->data, s + HEADER_LEN, pending);  // OpenSSL keeps the partial block as raw bytes
  ctx->md_len = SHA256_DIGEST_LENGTH;
  return wrap(env, ctx);
}

// update(context, bytes: Uint8Array)
static napi_value update(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) { napi_throw_type_error(env, NULL, "update(context, bytes)"); return NULL; }
  SHA256_CTX *ctx = unwrap(env, argv[0]);
  if (!ctx) return NULL;
  uint8_t *data;
  size_t len;
  if (!bytes_of(env, argv[1], &data, &len)) { napi_throw_type_error(env, NULL, "expected a Uint8Array"); return NULL; }
  if (len) SHA256_Update(ctx, data, len);
  return NULL;
}

// save(context) -> Buffer in the portable form
static napi_value save(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) { napi_throw_type_error(env, NULL, "save(context)"); return NULL; }
  SHA256_CTX *ctx = unwrap(env, argv[0]);
  if (!ctx) return NULL;
  uint64_t count = ((uint64_t)ctx->Nh << 32 | ctx->Nl) >> 3;
  size_t pending = ctx->num;
  void *p;
  napi_value out;
  CHECK(napi_create_buffer(env, HEADER_LEN + pending, &p, &out));
  uint8_t *o = p;
  memcpy(o, MAGIC, MAGIC_LEN);
  for (int i = 0; i < 8; i++) put32(o + MAGIC_LEN + 4 * i, ctx->h[i]);
  for (int i = 0; i < 8; i++) o[MAGIC_LEN + 32 + i] = (uint8_t)(count >> (56 - 8 * i));
  memcpy(o + HEADER_LEN, ctx->data, pending);
  return out;
}

// digest(context) -> 32-byte Buffer; the context itself goes on unchanged.
static napi_value digest(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) { napi_throw_type_error(env, NULL, "digest(context)"); return NULL; }
  SHA256_CTX *ctx = unwrap(env, argv[0]);
  if (!ctx) return NULL;
  SHA256_CTX copy = *ctx;
  void *p;
  napi_value out;
  CHECK(napi_create_buffer(env, SHA256_DIGEST_LENGTH, &p, &out));
  SHA256_Final(p, &copy);
  return out;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"create", NULL, create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"update", NULL, update, NULL, NULL, NULL, napi_enumerable, NULL},
      {"save", NULL, save, NULL, NULL, NULL, napi_enumerable, NULL},
      {"digest", NULL, digest, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return NULL;
  return exports;
}
