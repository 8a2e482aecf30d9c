// Revision demonstrations (rewards.h): what the contrastive revision prompts ask, as SFT rows.
#include "treg/error.h"
#include "treg/rewards.h"

namespace treg {

std::vector<RevisionDemo> revision_demonstrations(const RawPair& pair, const RevisionSpec& spec) {
  if (!spec.assistant_prefix.empty())
    fail("config key 'assistant_prefix'",
         "revision demonstrations need an empty assistant_prefix, got '" + spec.assistant_prefix +
             "': score-tokens tokenizes the prefix apart from the answer, a chat-rendered SFT row "
             "would not",
         "set `assistant_prefix: \"\"` for the SFT data and for the score-tokens run that uses "
         "the SFT'd model");
  const std::string instruction = instruction_text(pair.prompt);
  std::vector<RevisionDemo> out;
  for (const std::string* shown : {&pair.chosen, &pair.rejected})
    for (const char* direction : {"better", "worse"}) {
      const bool better = std::string(direction) == "better";
      out.push_back({direction,
                     render_revision_prompt(
                         spec.template_text, instruction, *shown, direction,
                         better ? spec.better_description : spec.worse_description),
                     better ? pair.chosen : pair.rejected});
    }
  return out;
}

}  // namespace treg
