// The safetensors header of an untrusted checkpoint file: lengths, JSON, dtypes, shapes, offsets.
#include "fuzz_util.h"
#include "treg/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto header = treg::parse_safetensors_header(data, size, "fuzz.safetensors");
    treg::fuzz::require(header.data_start <= size, "data section starts inside the file");
    for (const auto& e : header.entries)
      treg::fuzz::require(e.begin <= e.end && e.end <= size - header.data_start,
                          "every tensor lies inside the data section");
  } catch (const treg::Error&) {
  }
  return 0;
}
