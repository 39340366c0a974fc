// The project's one source of randomness (STYLE.md 2). Code that needs random bytes or numbers
// takes a Random& so that tests can inject a seeded one and replay exactly; production code
// passes SecureRandom, backed by OpenSSL's CSPRNG.
//
// Thread-safety: SecureRandom is thread-safe. SeededRandom is not; give each thread its own.
#ifndef SWARM_COMMON_RANDOM_H_
#define SWARM_COMMON_RANDOM_H_

#include <cstddef>
#include <cstdint>
#include <random>

namespace swarm {

class Random {
 public:
  virtual ~Random() = default;
  // Fills buf with len random bytes.
  virtual void Fill(void* buf, size_t len) = 0;
  // A uniformly distributed 64-bit number.
  uint64_t Next64();
  // A uniformly distributed number in [0, n); n must be positive.
  uint64_t Uniform(uint64_t n);
};

// Cryptographically strong randomness (OpenSSL RAND_bytes); aborts if the CSPRNG fails,
// because continuing would hand out predictable IDs and keys.
class SecureRandom final : public Random {
 public:
  void Fill(void* buf, size_t len) override;
  // A process-wide instance.
  static SecureRandom& Get();
};

// Deterministic randomness from a seed, for tests and simulations.
class SeededRandom final : public Random {
 public:
  explicit SeededRandom(uint64_t seed) : engine_(seed) {}
  void Fill(void* buf, size_t len) override;

 private:
  std::mt19937_64 engine_;
};

}  // namespace swarm

#endif  // SWARM_COMMON_RANDOM_H_
