#include "common/registry_auth.h"

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace swarm {
namespace {

TEST(RegistryAuthTest, EncodeDecodeRoundTripAndDockersPaddedForm) {
  const std::string encoded = EncodeRegistryAuth({"alice", "s3cr:et", "registry.example:5000"});
  auto back = DecodeRegistryAuth(encoded);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->username, "alice");
  EXPECT_EQ(back->password, "s3cr:et");
  EXPECT_EQ(back->server_address, "registry.example:5000");
  // What Docker's CLI sends: padded base64url of its AuthConfig.
  std::string docker;
  absl::Base64Escape(R"({"username":"bob","password":"pw","serveraddress":"r.example"})", &docker);
  auto from_docker = DecodeRegistryAuth(docker);
  ASSERT_TRUE(from_docker.ok()) << from_docker.status();
  EXPECT_EQ(from_docker->username, "bob");
  EXPECT_EQ(DecodeRegistryAuth("%%%").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeRegistryAuth(absl::WebSafeBase64Escape("[1]")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeRegistryAuth(absl::WebSafeBase64Escape(R"({"username": 1})")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RegistryAuthTest, IsLoginFor_DockerHubsAliasesAndExactHosts) {
  EXPECT_TRUE(IsLoginFor("https://index.docker.io/v1/", "docker.io"));
  EXPECT_TRUE(IsLoginFor("docker.io", "docker.io"));
  EXPECT_TRUE(IsLoginFor("https://registry.example:5000", "registry.example:5000"));
  EXPECT_FALSE(IsLoginFor("registry.example", "registry.example:5000"));
  EXPECT_FALSE(IsLoginFor("https://index.docker.io/v1/", "registry.example"));
}

TEST(RegistryAuthTest, DockerConfig_FindsTheRegistrysLoginOrSaysWhy) {
  const std::string config = R"({"auths": {
      "https://index.docker.io/v1/": {"auth": ")" +
                             absl::Base64Escape("hubuser:hubpw") + R"("},
      "registry.example:5000": {"auth": ")" +
                             absl::Base64Escape("alice:pa:ss") + R"("}}})";
  auto hub = RegistryAuthFromDockerConfig(config, "config.json", "docker.io");
  ASSERT_TRUE(hub.ok() && hub->has_value()) << hub.status();
  EXPECT_EQ((*hub)->username, "hubuser");
  EXPECT_EQ((*hub)->password, "hubpw");
  auto own = RegistryAuthFromDockerConfig(config, "config.json", "registry.example:5000");
  ASSERT_TRUE(own.ok() && own->has_value()) << own.status();
  EXPECT_EQ((*own)->password, "pa:ss");
  auto none = RegistryAuthFromDockerConfig(config, "config.json", "other.example");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  const std::string helpers =
      R"({"auths": {"r.example": {}}, "credsStore": "desktop", "credHelpers": {"h.example": "x"}})";
  auto helper = RegistryAuthFromDockerConfig(helpers, "/home/u/.docker/config.json", "r.example");
  EXPECT_EQ(helper.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(helper.status().message().find("credential helper"), std::string::npos);
  EXPECT_EQ(RegistryAuthFromDockerConfig(helpers, "c.json", "h.example").status().code(),
            absl::StatusCode::kFailedPrecondition);
  // A registry the helpers hold no login for simply has none (Docker Desktop sets credsStore).
  auto other = RegistryAuthFromDockerConfig(helpers, "c.json", "other.example");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_FALSE(other->has_value());
  EXPECT_EQ(RegistryAuthFromDockerConfig("{", "c.json", "r").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RegistryAuthFromDockerConfig(R"({"auths": {"r": {"auth": "nocolon"}}})", "c.json", "r")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace swarm
