// Reading ABI structs from C callers safely: the struct_size/version header
// check that every struct-taking entry point runs first, and the raw integer
// of a caller's enum field.
#pragma once

#include <cstdint>
#include <cstring>

#include "kvx/status.h"

namespace kvx {

// The integer a C caller stored in an enum field or argument. C lets an enum
// object hold any int, but a C++ load of a value outside the enumeration's
// range is undefined behaviour, so validation reads caller enums through this
// (a byte copy, no enum load) before it trusts them.
template <typename Enum>
int32_t raw_enum(const Enum& e) {
  static_assert(sizeof(Enum) == sizeof(int32_t), "ABI enums are 32 bits");
  int32_t v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

// Refuses (KVX_ERR_VERSION_MISMATCH, message naming `name`.struct_size or
// `name`.version) a struct whose size is not this library's or whose version
// is of another major or newer than the library. v1.0 requires the exact
// size; a later minor version that grows a struct will accept the 1.0 size too.
kvx_status_t check_abi_header(uint32_t struct_size, uint32_t version, uint32_t expected_size,
                              const char* name);

}  // namespace kvx
