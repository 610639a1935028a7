#ifndef SINGLEFLIGHT_CORE_BLOCKING_FETCHER_H_
#define SINGLEFLIGHT_CORE_BLOCKING_FETCHER_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "core/fetcher.h"
#include "core/thread_pool.h"

namespace singleflight {

// Adapts a synchronous function to the asynchronous Fetcher interface by
// running it on a bounded ThreadPool. An exception thrown by the function
// fails the flight with INTERNAL and the exception's message; a full pool
// fails it with RESOURCE_EXHAUSTED. An execution cancelled before it starts
// does not run.
//
// Thread-safe if `function` is. REQUIRES: `pool` outlives this fetcher.
class BlockingFetcher : public Fetcher {
 public:
  using Function =
      std::function<absl::StatusOr<std::string>(const FetchRequest&)>;

  BlockingFetcher(ThreadPool* pool, Function function);

  void Fetch(FetchRequest request, FetchCallback done) override;

 private:
  ThreadPool* const pool_;
  const Function function_;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_BLOCKING_FETCHER_H_
