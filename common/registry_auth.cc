#include "common/registry_auth.h"

#include <nlohmann/json.hpp>

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
  auth.username = j.value("username", "");
  auth.password = j.value("password", "");
  auth.server_address = j.value("serveraddress", "");
  return auth;
}

absl::StatusOr<std::optional<RegistryAuth>> RegistryAuthFromDockerConfig(
    const std::string& config_json, const std::string& path, const std::string& registry) {
  const nlohmann::json config =
      nlohmann::json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (!config.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, " is not JSON"));
  // docker login keys Docker Hub by its v1 URL and other registries by host, with or without
  // a scheme.
  auto matches = [&](const std::string& full) {
    absl::string_view key = full;
    if (!absl::ConsumePrefix(&key, "https://")) absl::ConsumePrefix(&key, "http://");
    absl::ConsumeSuffix(&key, "/");
    if (registry == "docker.io") {
      return key == "index.docker.io/v1" || key == "docker.io" || key == "index.docker.io";
    }
    return key == registry;
  };
  if (config.contains("auths") && config["auths"].is_object()) {
    for (const auto& [key, entry] : config["auths"].items()) {
      if (!matches(key) || !entry.is_object() || !entry.contains("auth")) continue;
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
  for (const char* helper : {"credsStore", "credHelpers"}) {
    if (config.contains(helper)) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, " keeps the credentials for ", registry, " in a credential helper (", helper,
          "), which swarmctl cannot read: log in again with the helper removed from the file"));
    }
  }
  return std::nullopt;
}

}  // namespace swarm
