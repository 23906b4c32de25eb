// normlab::Error and the NORMLAB_CHECK contract macro. Every precondition that a caller can
// violate (shapes, sizes, files, options) is checked and reported with an exception whose message
// names the operation and the values involved; nothing is half-done when one is thrown.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace normlab {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

}  // namespace normlab

/// Throws normlab::Error with the streamed message parts when `condition` is false.
#define NORMLAB_CHECK(condition, ...)                                    \
  do {                                                                   \
    if (!(condition)) throw ::normlab::Error(::normlab::detail::concat(__VA_ARGS__)); \
  } while (0)
