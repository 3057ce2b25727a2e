// Status values and the thread-local last-error message (one error model for
// every layer: functions return kvx_status_t; the message names the field).
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

#include "kvx/status.h"

namespace kvx {

// Replaces the calling thread's last-error message.
void set_last_error(std::string_view message);
void clear_last_error();
const char* last_error();

// Records "message" as the last error and returns `status`, so that error
// paths read `return fail(KVX_ERR_INVALID_LAYOUT, "layout.num_blocks: {} < 1", n);`.
template <typename... Args>
[[nodiscard]] kvx_status_t fail(kvx_status_t status, fmt::format_string<Args...> format,
                                Args&&... args) {
  set_last_error(fmt::format(format, std::forward<Args>(args)...));
  return status;
}

}  // namespace kvx

// Propagates a non-OK status.
#define KVX_TRY(expr)                          \
  do {                                         \
    const kvx_status_t kvx_try_s_ = (expr);    \
    if (kvx_try_s_ != KVX_OK) return kvx_try_s_; \
  } while (0)
