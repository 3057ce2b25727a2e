/* KVX symbol visibility: only functions marked KVX_API leave libkvx.so. */
#ifndef KVX_EXPORT_H
#define KVX_EXPORT_H

#if defined(KVX_BUILDING_LIBRARY)
#define KVX_API __attribute__((visibility("default")))
#else
#define KVX_API
#endif

#endif /* KVX_EXPORT_H */
