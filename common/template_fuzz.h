// The template engine's fuzz entry: parses the input as a template and, when it parses,
// executes it against a fixed value with every kind of data (structs, embedded structs, maps,
// lists, numbers, nil). Whatever the input, the engine must return (a result or an error that
// names a position), never crash, hang or grow without bound, and give the same answer twice.
//
// CI runs it deterministically over seeds and their mutations (template_fuzz_test). With
// clang's libFuzzer, by hand (one command line):
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address -I. common/template_fuzz.cc
//     common/template.cc $(pkg-config --libs absl_strings absl_status absl_statusor
//     absl_str_format) -o /tmp/template_fuzz && /tmp/template_fuzz
#ifndef SWARM_COMMON_TEMPLATE_FUZZ_H_
#define SWARM_COMMON_TEMPLATE_FUZZ_H_

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

#endif  // SWARM_COMMON_TEMPLATE_FUZZ_H_
