// Precompiled header: LibTorch's headers cost ~16 s per translation unit, so they are parsed once.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <string>
#include <vector>
#include <memory>
