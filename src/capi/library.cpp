// libkvx.so is kvx_core linked whole; this unit only gives the target a source.
namespace kvx {
extern const char kLibraryName[] = "kvx";
}  // namespace kvx
