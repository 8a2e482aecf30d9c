#!/usr/bin/env bash
# Every install step of scripts/setup.sh, from scratch, on each test run: this machine already has
# what setup.sh installed, so a green suite alone would not show a broken install.
#   1. The Debian packages of scripts/packages-bookworm.txt resolve and would install on a machine
#      that has nothing (apt's solver run against an empty dpkg status).
#   2. The static sentencepiece builds from Debian's source package into a new prefix, and a program
#      linked against it (and libtorch's protobuf) encodes text.
#   3. minja unpacks from Debian sid's libminja-dev into that prefix, and a program renders a chat
#      template with it against Debian 12's nlohmann-json.
# Usage: install_steps.sh WORK_DIR   (as root; the full proof in a clean root is
#        scripts/check_fresh_machine.sh)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
WORK=$1
rm -rf "$WORK"
mkdir -p "$WORK"

if [ "$(. /etc/os-release && echo "$VERSION_CODENAME")" = bookworm ]; then
  : > "$WORK/empty-status"
  read -r -a PACKAGES <<< "$(sed 's/#.*//' "$SRC/scripts/packages-bookworm.txt" | tr '\n' ' ')"
  apt-get -s -o Dir::State::Status="$WORK/empty-status" install --no-install-recommends "${PACKAGES[@]}" \
    > "$WORK/apt-sim.log" 2>&1 || {
    tail -20 "$WORK/apt-sim.log"
    echo "FAIL: the packages of scripts/packages-bookworm.txt do not install on an empty Debian 12"
    exit 1
  }
  echo "apt: $(grep -c '^Inst ' "$WORK/apt-sim.log") packages would install on an empty system"
else
  echo "apt: not Debian 12 ($(. /etc/os-release && echo "$PRETTY_NAME")); the package list is for Debian 12"
fi

bash "$SRC/scripts/build_sentencepiece.sh" "$WORK/prefix"
cat > "$WORK/spm.cpp" <<'CPP'
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <fstream>
#include <iostream>
int main(int argc, char** argv) {
  std::string dir = argv[1];
  std::ofstream(dir + "/corpus.txt") << "the quick brown fox jumps over the lazy dog\nhello world\n";
  auto st = sentencepiece::SentencePieceTrainer::Train("--input=" + dir + "/corpus.txt --model_prefix=" + dir +
                                                      "/m --vocab_size=30 --minloglevel=2");
  if (!st.ok()) { std::cerr << st.ToString() << "\n"; return 1; }
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.Load(dir + "/m.model").ok()) return 1;
  std::vector<int> ids;
  sp.Encode("hello fox", &ids);
  std::string back;
  sp.Decode(ids, &back);
  std::cout << ids.size() << " ids, round trip '" << back << "'\n";
  return back == "hello fox" ? 0 : 1;
}
CPP
g++ -std=c++20 -O1 -I"$WORK/prefix/include" "$WORK/spm.cpp" -o "$WORK/spm" \
  "$WORK/prefix/lib/libsentencepiece_train.a" "$WORK/prefix/lib/libsentencepiece.a" \
  $(pkg-config --libs protobuf-lite) -lpthread
"$WORK/spm" "$WORK"

bash "$SRC/scripts/fetch_minja.sh" "$WORK/prefix"
cat > "$WORK/minja.cpp" <<'CPP'
#include <minja/minja.hpp>
#include <iostream>
int main() {
  auto t = minja::Parser::parse("{% for m in messages %}<|{{ m.role }}|>{{ m.content | trim }}\n{% endfor %}",
                                {/*trim_blocks=*/true, /*lstrip_blocks=*/true, /*keep_trailing_newline=*/false});
  auto ctx = minja::Context::make(minja::Value(nlohmann::ordered_json{
      {"messages", {{{"role", "user"}, {"content", " Hi "}}}}}));
  std::string out = t->render(ctx);
  std::cout << "minja rendered '" << out << "'\n";
  return out == "<|user|>Hi\n" ? 0 : 1;
}
CPP
g++ -std=c++20 -O0 -isystem "$WORK/prefix/usr/include" "$WORK/minja.cpp" -o "$WORK/minja"
"$WORK/minja"
echo "install steps ok"
