#ifndef SINGLEFLIGHT_CORE_WAITER_LIST_H_
#define SINGLEFLIGHT_CORE_WAITER_LIST_H_

#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/container/inlined_vector.h"

namespace singleflight {

// The waiters of one flight: Add and Remove without hashing, and, once the
// list has grown, without allocating (the slot of a waiter that left is
// reused; the first slot needs no allocation at all). Each waiter is named by
// an id that stays unique until TakeAll (after which a flight's list takes no
// more waiters): the slot's index with the slot's generation above it, so that
// the id of a waiter that left never removes the waiter now in its slot. The
// first waiter added gets id kFirstId.
//
// `Waiter` is a callable that compares equal to nullptr when empty, and
// can be assigned nullptr (absl::AnyInvocable, std::function).
//
// Thread-compatible: the Group guards each list with its shard's mutex.
template <typename Waiter>
class WaiterList {
 public:
  static constexpr uint64_t kFirstId = 0;

  // Adds `waiter`; returns its id.
  uint64_t Add(Waiter waiter) {
    uint32_t index;
    if (free_.empty()) {
      index = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back();
    } else {
      index = free_.back();
      free_.pop_back();
    }
    Slot& slot = slots_[index];
    slot.waiter = std::move(waiter);
    ++size_;
    return (uint64_t{slot.generation} << 32) | index;
  }

  // Takes out the waiter named `id`; an empty Waiter if it is not here (it
  // was removed, or taken by TakeAll).
  Waiter Remove(uint64_t id) {
    uint32_t index = static_cast<uint32_t>(id);
    if (index >= slots_.size()) return nullptr;
    Slot& slot = slots_[index];
    if (slot.generation != static_cast<uint32_t>(id >> 32) ||
        slot.waiter == nullptr) {
      return nullptr;
    }
    Waiter waiter = std::exchange(slot.waiter, nullptr);
    ++slot.generation;
    free_.push_back(index);
    --size_;
    return waiter;
  }

  // Calls `visit(id, waiter)` for every waiter, then empties the list.
  template <typename Visit>
  void TakeAll(Visit visit) {
    for (uint32_t index = 0; index < slots_.size(); ++index) {
      Slot& slot = slots_[index];
      if (slot.waiter == nullptr) continue;
      visit((uint64_t{slot.generation} << 32) | index, slot.waiter);
    }
    slots_.clear();
    free_.clear();
    size_ = 0;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  struct Slot {
    Waiter waiter;  // Empty while the slot is free.
    uint32_t generation = 0;
  };

  // The first slot is inline: a flight nobody joins allocates none.
  absl::InlinedVector<Slot, 1> slots_;
  absl::InlinedVector<uint32_t, 1> free_;  // Indices of empty slots.
  size_t size_ = 0;
};

}  // namespace singleflight

#endif  // SINGLEFLIGHT_CORE_WAITER_LIST_H_
