#include "fetchers/builtin_fetchers.h"

#include "fetchers/echo_fetcher.h"
#include "fetchers/grpc_fetcher.h"
#include "fetchers/http_fetcher.h"
#include "fetchers/plugin_fetcher.h"

namespace singleflight {

void RegisterBuiltinSchemes(FetcherRegistry& registry) {
  registry.RegisterScheme("echo", &EchoFetcher::Create);
  registry.RegisterScheme("http", &HttpFetcher::Create);
  registry.RegisterScheme("https", &HttpFetcher::Create);
  registry.RegisterScheme("grpc", &GrpcFetcher::Create);
  registry.RegisterScheme("grpcs", &GrpcFetcher::Create);
  registry.RegisterScheme("plugin", &PluginFetcher::Create);
}

}  // namespace singleflight
