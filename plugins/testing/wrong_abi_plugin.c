/*
 * A deliberately incompatible plugin for tests: it exports sf_plugin_entry,
 * but its table reports an ABI version this server does not speak, so the
 * server must refuse it without calling anything else in it.
 */
#include <stdint.h>

/* A table from a hypothetical future ABI: only the leading version counts. */
struct future_plugin {
  uint32_t abi_version;
  void* functions[8];
};

static const struct future_plugin kPlugin = {999, {0}};

const struct future_plugin* sf_plugin_entry(void) { return &kPlugin; }
