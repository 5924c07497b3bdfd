#pragma once
// A first-in first-out queue that costs nothing while empty.
//
// std::deque (libstdc++) allocates a 64-byte map and a 512-byte block as soon as it is
// constructed, empty or not. A session keeps several small queues (reply slots, commands owed
// by the backend, log lines waiting for a verdict) that are empty most of their life, and idle
// connections dominate memory (bench/LIMITS.md, W4): this one allocates on the first push and
// gives its memory back when it empties.
//
// Storage is a vector with a moving head: pop_front() is O(1), the consumed prefix is dropped
// when it outgrows the live part (amortised O(1)), so a queue that never empties (a long
// pipeline) stays bounded by its live elements.

#include <cstddef>
#include <utility>
#include <vector>

namespace certrelay::smtp {

template <typename T>
class Fifo {
 public:
  using iterator = typename std::vector<T>::iterator;
  using const_iterator = typename std::vector<T>::const_iterator;

  bool empty() const { return head_ == items_.size(); }
  std::size_t size() const { return items_.size() - head_; }
  // Elements' worth of storage held (consumed slots included): 0 whenever the queue is empty.
  std::size_t capacity() const { return items_.capacity(); }

  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }
  T& back() { return items_.back(); }
  const T& back() const { return items_.back(); }
  T& operator[](std::size_t i) { return items_[head_ + i]; }
  const T& operator[](std::size_t i) const { return items_[head_ + i]; }

  iterator begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  iterator end() { return items_.end(); }
  const_iterator begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  const_iterator end() const { return items_.end(); }

  // push_back, push_front, pop_front: std::deque's names (Fifo replaced a deque without
  // changing its callers), not the project's camelCase.
  // NOLINTBEGIN(readability-identifier-naming)
  void push_back(T value) { items_.push_back(std::move(value)); }

  void push_front(T value) {
    if (head_ > 0) {
      items_[--head_] = std::move(value);
    } else {
      items_.insert(items_.begin(), std::move(value));
    }
  }

  void pop_front() {
    items_[head_] = T{};  // the element's own memory (strings) goes now, not at compaction
    ++head_;
    if (head_ == items_.size()) {
      clear();
    } else if (head_ >= kCompactAfter && head_ * 2 >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  // NOLINTEND(readability-identifier-naming)

  // Empties the queue and releases its storage.
  void clear() {
    std::vector<T>().swap(items_);
    head_ = 0;
  }

  template <typename It>
  void assign(It first, It last) {
    items_.assign(first, last);
    head_ = 0;
  }

 private:
  static constexpr std::size_t kCompactAfter = 32;

  std::vector<T> items_;
  std::size_t head_ = 0;  // index of the front element
};

}  // namespace certrelay::smtp
