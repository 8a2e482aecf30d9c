// One JSON object per logging or eval event (metrics.jsonl), HF log_history style.
#include <cmath>

#include "treg/trainer.h"

namespace treg {

std::string log_event_json(const LogEvent& e) {
  nlohmann::ordered_json j;
  j["step"] = e.step;
  for (const auto& [k, v] : e.values) {
    if (std::isfinite(v)) j[k] = v;
    else j[k] = std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  }
  return j.dump();
}

}  // namespace treg
