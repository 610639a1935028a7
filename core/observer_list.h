#ifndef SINGLEFLIGHT_CORE_OBSERVER_LIST_H_
#define SINGLEFLIGHT_CORE_OBSERVER_LIST_H_

#include <utility>
#include <vector>

#include "core/flight_observer.h"

namespace singleflight {

// A FlightObserver that tells each of several observers, in order (metrics
// and logs, say).
//
// Thread-safe if the observers are; the list is fixed at construction.
class ObserverList : public FlightObserver {
 public:
  // REQUIRES: every observer outlives this list.
  explicit ObserverList(std::vector<FlightObserver*> observers)
      : observers_(std::move(observers)) {}

  void ExecutionStarted(const NamedFetcher& fetcher) override {
    for (FlightObserver* observer : observers_) {
      observer->ExecutionStarted(fetcher);
    }
  }
  void ExecutionEnded(const NamedFetcher& fetcher, const absl::Status& status,
                      absl::Duration duration) override {
    for (FlightObserver* observer : observers_) {
      observer->ExecutionEnded(fetcher, status, duration);
    }
  }
  void Joined(const NamedFetcher& fetcher) override {
    for (FlightObserver* observer : observers_) observer->Joined(fetcher);
  }
  void Rejected(const NamedFetcher& fetcher, const char* limit) override {
    for (FlightObserver* observer : observers_) {
      observer->Rejected(fetcher, limit);
    }
  }

 private:
  const std::vector<FlightObserver*> observers_;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_OBSERVER_LIST_H_
