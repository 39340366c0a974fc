#include "agent/runtime/reference.h"

#include "gtest/gtest.h"

namespace swarm::agent::runtime {
namespace {

TEST(ParseReference_Test, ShortNameMeansDefaultRegistryLibraryLatest) {
  auto r = ParseReference("busybox");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->registry, "docker.io");
  EXPECT_EQ(r->repository, "library/busybox");
  EXPECT_EQ(r->tag, "latest");
  EXPECT_EQ(r->String(), "docker.io/library/busybox:latest");
  EXPECT_EQ(r->RegistryHost(), "registry-1.docker.io");
}

TEST(ParseReference_Test, UserRepositoryAndTag) {
  auto r = ParseReference("team/app:1.2");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->String(), "docker.io/team/app:1.2");
}

TEST(ParseReference_Test, RegistryWithPort) {
  auto r = ParseReference("127.0.0.1:5000/test/busybox");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->registry, "127.0.0.1:5000");
  EXPECT_EQ(r->repository, "test/busybox");
  EXPECT_EQ(r->tag, "latest");
  auto l = ParseReference("localhost/x:y");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->registry, "localhost");
}

TEST(ParseReference_Test, DigestPins) {
  std::string d = "sha256:" + std::string(64, 'a');
  auto r = ParseReference("busybox@" + d);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->digest, d);
  EXPECT_EQ(r->String(), "docker.io/library/busybox@" + d);
  auto both = ParseReference("busybox:1@" + d);
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->String(), "docker.io/library/busybox@" + d);
}

TEST(ParseReference_Test, Invalid) {
  EXPECT_FALSE(ParseReference("").ok());
  EXPECT_FALSE(ParseReference("busybox@sha256:abc").ok());
  EXPECT_FALSE(ParseReference("BusyBox").ok());
  EXPECT_FALSE(ParseReference("busybox:").ok());
}

}  // namespace
}  // namespace swarm::agent::runtime
