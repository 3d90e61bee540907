#pragma once
// The dashboard's files as the build embedded them (web/ui/**, by cmake/SdohEmbed.cmake, into a
// generated source of the sdoh_ui_files library).
#include <span>

#include "gateway/ops/ui.hpp"

namespace sdoh::ops {

std::span<const EmbeddedFile> ui_files();

}  // namespace sdoh::ops
