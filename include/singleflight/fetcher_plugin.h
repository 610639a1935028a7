/*
 * The C ABI of singleflight fetcher plugins.
 *
 * A plugin is a shared library that singleflightd loads for a fetcher URI
 * `plugin:/abs/path/libfoo.so?name=value&...`. It turns a key (and the
 * payload of the caller that started the flight) into a value, like any
 * other fetcher. This header is plain C (C99 or later, any compiler); it is
 * the whole contract between the server and a plugin.
 *
 * Loading. The server dlopen()s the library (RTLD_NOW | RTLD_LOCAL), looks
 * up the symbol SF_PLUGIN_ENTRY_SYMBOL, calls it once, and refuses the
 * library unless the returned table's abi_version is SF_PLUGIN_ABI_VERSION.
 * It then calls create() once with the URI's settings. One library may be
 * loaded by several fetchers; each gets its own instance.
 *
 * Versioning. struct sf_plugin_v1 never changes. An incompatible ABI gets a
 * new version number and a new table type (struct sf_plugin_v2, ...), whose
 * first member is again `uint32_t abi_version`, so that a server can always
 * read the version of any plugin and refuse the ones it does not speak.
 *
 * Threading. fetch() and cancel() are called concurrently, from any threads,
 * for different fetches (and cancel() concurrently with the fetch's own
 * completion). A plugin must not block in them: start the work, return, and
 * deliver the result later through the completion, from any thread. create()
 * and destroy() are never called concurrently with anything else on the same
 * instance.
 *
 * Memory. Every pointer the server passes (settings, key, payload) is valid
 * only during the call it is passed to; copy what you keep. The data a plugin
 * passes to the complete function is copied before that call returns; the
 * plugin keeps ownership of it.
 */
#ifndef SINGLEFLIGHT_FETCHER_PLUGIN_H_
#define SINGLEFLIGHT_FETCHER_PLUGIN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header describes. */
#define SF_PLUGIN_ABI_VERSION 1

/* The symbol, of type sf_plugin_entry_fn, every plugin exports. */
#define SF_PLUGIN_ENTRY_SYMBOL "sf_plugin_entry"

/* Status codes for the complete function: google.rpc.Code (gRPC codes). */
enum sf_code {
  SF_CODE_OK = 0,
  SF_CODE_CANCELLED = 1,
  SF_CODE_UNKNOWN = 2,
  SF_CODE_INVALID_ARGUMENT = 3,
  SF_CODE_DEADLINE_EXCEEDED = 4,
  SF_CODE_NOT_FOUND = 5,
  SF_CODE_ALREADY_EXISTS = 6,
  SF_CODE_PERMISSION_DENIED = 7,
  SF_CODE_RESOURCE_EXHAUSTED = 8,
  SF_CODE_FAILED_PRECONDITION = 9,
  SF_CODE_ABORTED = 10,
  SF_CODE_OUT_OF_RANGE = 11,
  SF_CODE_UNIMPLEMENTED = 12,
  SF_CODE_INTERNAL = 13,
  SF_CODE_UNAVAILABLE = 14,
  SF_CODE_DATA_LOSS = 15,
  SF_CODE_UNAUTHENTICATED = 16
};

/* One fetch in progress, as the server knows it. Opaque to the plugin: it
 * is only handed back, to the complete function and in cancel(). The handle
 * stays valid, and is not reused for another fetch, until complete has been
 * called for it and any cancel() for it has returned. */
typedef struct sf_completion sf_completion;

/* Delivers the result of one fetch. The plugin calls it exactly once per
 * fetch(), from any thread, including from inside fetch() or cancel().
 *   code: an sf_code. SF_CODE_OK: `data` is the value. Otherwise `data` is
 *         the error message (not NUL-terminated; may be empty). A code
 *         outside 0..16 fails the fetch with SF_CODE_UNKNOWN.
 *   data, size: `size` bytes at `data`; `data` may be NULL if `size` is 0.
 *         Copied before the call returns; the plugin keeps ownership.
 * The server may run its own work inside this call, including calling
 * fetch() or cancel() of the same instance for other fetches: do not hold a
 * lock that fetch() or cancel() take while calling it. */
typedef void (*sf_complete_fn)(sf_completion* completion, int code,
                               const char* data, size_t size);

/* The functions of a version 1 plugin. Every member must be set. */
struct sf_plugin_v1 {
  /* SF_PLUGIN_ABI_VERSION (1). Always the first member. */
  uint32_t abi_version;

  /* Makes an instance from the URI's settings: `count` pairs, names[i] =
   * values[i], NUL-terminated strings, in no particular order. Returns the
   * instance (any non-NULL pointer), or NULL after writing a NUL-terminated
   * reason of at most `error_size` bytes, counting the NUL, into `error`
   * (for example on an unknown or malformed setting). */
  void* (*create)(const char* const* names, const char* const* values,
                  size_t count, char* error, size_t error_size);

  /* Starts fetching the value of `key` (`key_size` bytes, not
   * NUL-terminated). `payload` (`payload_size` bytes, maybe empty) is what
   * the caller that started the flight sent along. Must not block; must see
   * to it that complete(completion, ...) is called exactly once, from any
   * thread, now or later. */
  void (*fetch)(void* instance, const char* key, size_t key_size,
                const char* payload, size_t payload_size,
                sf_completion* completion, sf_complete_fn complete);

  /* The server no longer wants the result of the fetch that `completion`
   * belongs to (every caller left, or it timed out); it has already failed
   * the flight with CANCELLED and ignores whatever the fetch delivers. The
   * plugin should stop the work. It must still call complete exactly once
   * for the fetch, with any code (SF_CODE_CANCELLED is usual), unless it has
   * already done so. Called at most once per fetch, only after fetch() has
   * returned, possibly while (or after) the plugin is calling complete for
   * the same fetch: a cancel() for a fetch already completed does nothing.
   * Must not block. */
  void (*cancel)(void* instance, sf_completion* completion);

  /* Frees the instance. Fetches may still be in progress: before returning,
   * destroy() must call complete for each of them (SF_CODE_CANCELLED is
   * usual) and stop every thread it started, because the server may unload
   * the library right after. Nothing else is called on the instance after
   * destroy(). */
  void (*destroy)(void* instance);
};

/* Makes a symbol visible outside the library even when it is built with
 * -fvisibility=hidden. */
#if defined(__GNUC__) || defined(__clang__)
#define SF_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define SF_PLUGIN_EXPORT
#endif

/* The entry point every plugin defines, with C linkage. It returns a pointer
 * to a table that stays valid while the library is loaded; it may be called
 * more than once and must return the same table each time. */
SF_PLUGIN_EXPORT const struct sf_plugin_v1* sf_plugin_entry(void);
typedef const struct sf_plugin_v1* (*sf_plugin_entry_fn)(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SINGLEFLIGHT_FETCHER_PLUGIN_H_ */
