#include "common/random.h"

#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace swarm {

uint64_t Random::Next64() {
  uint64_t v;
  Fill(&v, sizeof(v));
  return v;
}

uint64_t Random::Uniform(uint64_t n) {
  // Rejection sampling keeps the distribution exact for any n.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t v;
  do {
    v = Next64();
  } while (v >= limit);
  return v % n;
}

void SecureRandom::Fill(void* buf, size_t len) {
  if (RAND_bytes(static_cast<unsigned char*>(buf), static_cast<int>(len)) != 1) {
    std::fprintf(stderr, "FATAL: OpenSSL's random generator failed; refusing to continue\n");
    std::abort();
  }
}

SecureRandom& SecureRandom::Get() {
  static SecureRandom* instance = new SecureRandom();
  return *instance;
}

void SeededRandom::Fill(void* buf, size_t len) {
  auto* out = static_cast<unsigned char*>(buf);
  while (len > 0) {
    uint64_t v = engine_();
    size_t n = len < sizeof(v) ? len : sizeof(v);
    std::memcpy(out, &v, n);
    out += n;
    len -= n;
  }
}

}  // namespace swarm
