#include "agent/runtime/reference.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace swarm::agent::runtime {

bool IsValidDigest(const std::string& digest) {
  if (!absl::StartsWith(digest, "sha256:") || digest.size() != 7 + 64) return false;
  for (char c : digest.substr(7)) {
    if (!absl::ascii_isdigit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

std::string Reference::String() const {
  if (!digest.empty()) return absl::StrCat(Name(), "@", digest);
  return absl::StrCat(Name(), ":", tag);
}

std::string Reference::RegistryHost() const {
  return registry == kDefaultRegistry ? "registry-1.docker.io" : registry;
}

absl::StatusOr<Reference> ParseReference(const std::string& text) {
  auto invalid = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid image reference \"", text, "\": ", why));
  };
  if (text.empty()) return invalid("empty");
  Reference ref;
  std::string rest = text;
  if (size_t at = rest.find('@'); at != std::string::npos) {
    ref.digest = rest.substr(at + 1);
    rest = rest.substr(0, at);
    if (!IsValidDigest(ref.digest)) return invalid("the digest is not sha256:<64 hex digits>");
  }
  // A tag is after the last ':' that comes after the last '/'.
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    ref.tag = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
    if (ref.tag.empty()) return invalid("empty tag");
  }
  size_t first = rest.find('/');
  std::string head = first == std::string::npos ? "" : rest.substr(0, first);
  if (!head.empty() && (head.find('.') != std::string::npos ||
                        head.find(':') != std::string::npos || head == "localhost")) {
    ref.registry = head;
    ref.repository = rest.substr(first + 1);
  } else {
    ref.registry = kDefaultRegistry;
    ref.repository = rest;
  }
  if (ref.registry == kDefaultRegistry && ref.repository.find('/') == std::string::npos) {
    ref.repository = "library/" + ref.repository;
  }
  if (ref.repository.empty()) return invalid("no repository");
  for (char c : ref.repository) {
    if (absl::ascii_isupper(c)) return invalid("repository names must be lower case");
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

}  // namespace swarm::agent::runtime
