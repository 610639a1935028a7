#include "fetchers/builtin_fetchers.h"

#include "fetchers/echo_fetcher.h"

namespace singleflight {

void RegisterBuiltinSchemes(FetcherRegistry& registry) {
  registry.RegisterScheme("echo", &EchoFetcher::Create);
}

}  // namespace singleflight
