#pragma once
// The one exception type of policy/: thrown while loading (table file, networks), never while
// deciding.

#include <stdexcept>

namespace certrelay::policy {

// `file:line: reason`, or `<key>: reason` for a value that came from the config.
class PolicyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace certrelay::policy
