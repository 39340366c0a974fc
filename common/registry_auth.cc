#include "common/registry_auth.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace swarm {

std::string EncodeRegistryAuth(const RegistryAuth& auth) {
  const nlohmann::json j = {{"username", auth.username},
                            {"password", auth.password},
                            {"serveraddress", auth.server_address}};
  return absl::WebSafeBase64Escape(j.dump());
}

absl::StatusOr<RegistryAuth> DecodeRegistryAuth(const std::string& encoded) {
  std::string text;
  // Docker's clients pad; WebSafeBase64Unescape takes either.
  if (!absl::WebSafeBase64Unescape(encoded, &text)) {
    return absl::InvalidArgumentError("the registry credentials are not base64url");
  }
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return absl::InvalidArgumentError("the registry credentials are not a JSON object");
  }
  RegistryAuth auth;
  for (auto [key, field] : {std::pair<const char*, std::string*>{"username", &auth.username},
                            {"password", &auth.password},
                            {"serveraddress", &auth.server_address}}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the registry credentials' ", key, " is not a string"));
    }
    *field = j[key].get<std::string>();
  }
  return auth;
}

bool IsLoginFor(const std::string& server_address, const std::string& registry) {
  absl::string_view key = server_address;
  if (!absl::ConsumePrefix(&key, "https://")) absl::ConsumePrefix(&key, "http://");
  absl::ConsumeSuffix(&key, "/");
  if (registry == "docker.io") {
    // docker login keys Docker Hub by its v1 URL.
    return key == "index.docker.io/v1" || key == "docker.io" || key == "index.docker.io";
  }
  return key == registry;
}

absl::StatusOr<std::optional<RegistryAuth>> RegistryAuthFromDockerConfig(
    const std::string& config_json, const std::string& path, const std::string& registry) {
  const nlohmann::json config =
      nlohmann::json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (!config.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, " is not JSON"));
  // A login kept by a credential helper leaves an empty entry here (or a credHelpers entry).
  bool in_helper = false;
  if (config.contains("auths") && config["auths"].is_object()) {
    for (const auto& [key, entry] : config["auths"].items()) {
      if (!IsLoginFor(key, registry) || !entry.is_object()) continue;
      if (!entry.contains("auth")) {
        in_helper = true;
        continue;
      }
      std::string user_password;
      if (!entry["auth"].is_string() ||
          !absl::Base64Unescape(entry["auth"].get<std::string>(), &user_password) ||
          user_password.find(':') == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": the credentials for ", key, " are not base64 of user:password"));
      }
      const size_t colon = user_password.find(':');
      return RegistryAuth{user_password.substr(0, colon), user_password.substr(colon + 1), key};
    }
  }
  if (config.contains("credHelpers") && config["credHelpers"].is_object()) {
    for (const auto& [key, helper] : config["credHelpers"].items()) {
      in_helper = in_helper || IsLoginFor(key, registry);
    }
  }
  if (in_helper) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " keeps the login for ", registry,
        " in a credential helper, which swarmctl cannot read: log in again with the helper "
        "(credsStore, credHelpers) removed from the file"));
  }
  return std::nullopt;
}

}  // namespace swarm
