#include "core/status.hpp"

namespace kvx {
namespace {
thread_local std::string t_last_error;
}  // namespace

void set_last_error(std::string_view message) { t_last_error.assign(message); }
void clear_last_error() { t_last_error.clear(); }
const char* last_error() { return t_last_error.c_str(); }

}  // namespace kvx
