// Whether this build runs under AddressSanitizer (scripts/sanitize.sh): what pyhost
// does differently there, each where it matters, says why.
#ifndef PYHOST_BINDINGS_ASAN_H_
#define PYHOST_BINDINGS_ASAN_H_

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PYHOST_ASAN 1
#endif
#elif defined(__SANITIZE_ADDRESS__)
#define PYHOST_ASAN 1
#endif

namespace pyhost {

#ifdef PYHOST_ASAN
inline constexpr bool kAsanBuild = true;
#else
inline constexpr bool kAsanBuild = false;
#endif

}  // namespace pyhost

#endif  // PYHOST_BINDINGS_ASAN_H_
