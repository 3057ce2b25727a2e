// The one way a C entry point calls into C++: catch everything, map it to a
// status, set the last-error message. Each extern "C" function is
//   return kvx::capi_guard("kvx_append", [&] { return kvx::ops::append(args, exec); });
#pragma once

#include <exception>
#include <new>

#include "core/status.hpp"

namespace kvx {

template <typename F>
kvx_status_t capi_guard(const char* function, F&& body) noexcept {
  try {
    clear_last_error();
    return body();
  } catch (const std::bad_alloc&) {
    return fail(KVX_ERR_OUT_OF_MEMORY, "{}: out of host memory", function);
  } catch (const std::exception& e) {
    return fail(KVX_ERR_INTERNAL, "{}: internal error: {}", function, e.what());
  } catch (...) {
    return fail(KVX_ERR_INTERNAL, "{}: internal error", function);
  }
}

}  // namespace kvx
