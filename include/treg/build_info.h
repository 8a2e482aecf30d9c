// What the build knows about itself: the version and the source tree that holds the bundled data
// (configs/). Kept behind functions, out of every other compile command, so that no object file but
// src/util/build_info.cpp depends on where the tree was checked out: a clone elsewhere (CI) then
// hits ccache for everything else, precompiled header included.
#pragma once

#include <string>

namespace treg {

const char* build_version();
std::string source_dir();

}  // namespace treg
