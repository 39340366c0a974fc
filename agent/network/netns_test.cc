#include "agent/network/netns.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/network/nftables.h"
#include "agent/network/testing/test_hosts.h"

namespace swarm::agent::network {
namespace {

using ::testing::HasSubstr;

ino_t NetnsInode(const std::string& path) {
  struct stat st {};
  stat(path.c_str(), &st);
  return st.st_ino;
}

class NetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto hosts = testing::TestHosts::Create();
    ASSERT_TRUE(hosts.ok()) << hosts.status();
    hosts_ = std::move(*hosts);
  }
  std::unique_ptr<testing::TestHosts> hosts_;
};

TEST_F(NetnsTest, CreateNamedNetns_IsANewNamespaceAndDeleteRemovesIt) {
  const std::string path = hosts_->dir() + "/ns1";
  ASSERT_TRUE(CreateNamedNetns(path).ok());
  EXPECT_TRUE(IsNetnsMount(path));
  EXPECT_NE(NetnsInode(path), NetnsInode("/proc/self/ns/net"));
  EXPECT_TRUE(absl::IsAlreadyExists(CreateNamedNetns(path)));
  ASSERT_TRUE(DeleteNamedNetns(path).ok());
  EXPECT_FALSE(IsNetnsMount(path));
  EXPECT_NE(access(path.c_str(), F_OK), 0);
  absl::Status again = DeleteNamedNetns(path);
  EXPECT_TRUE(absl::IsNotFound(again)) << again;
}

TEST_F(NetnsTest, RunInNetns_RunsThereAndLeavesTheCallerWhereItWas) {
  const ino_t mine = NetnsInode("/proc/thread-self/ns/net");
  auto fd = OpenNetns(hosts_->host(0));
  ASSERT_TRUE(fd.ok()) << fd.status();
  ino_t seen = 0;
  ASSERT_TRUE(RunInNetns(fd->get(), [&] {
                seen = NetnsInode("/proc/thread-self/ns/net");
                return absl::OkStatus();
              }).ok());
  EXPECT_EQ(seen, NetnsInode(hosts_->host(0)));
  EXPECT_EQ(NetnsInode("/proc/thread-self/ns/net"), mine);
  // fn's error comes back.
  EXPECT_TRUE(absl::IsAborted(RunInNetns(fd->get(), [] { return absl::AbortedError("x"); })));
}

TEST_F(NetnsTest, OpenNetns_MissingPathSaysWhich) {
  auto fd = OpenNetns("/nonexistent/ns");
  EXPECT_TRUE(absl::IsNotFound(fd.status()));
  EXPECT_THAT(fd.status().message(), HasSubstr("opening network namespace /nonexistent/ns"));
}

TEST_F(NetnsTest, RunNft_AppliesInTheNamespaceAndReportsNftsError) {
  auto fd = OpenNetns(hosts_->host(0));
  ASSERT_TRUE(fd.ok());
  ASSERT_TRUE(RunNft(fd->get(), "add table ip t1", "adding").ok());
  auto list = RunNft(fd->get(), "list tables", "listing");
  ASSERT_TRUE(list.ok());
  EXPECT_THAT(*list, HasSubstr("table ip t1"));
  auto other = OpenNetns(hosts_->host(1));
  ASSERT_TRUE(other.ok());
  EXPECT_THAT(*RunNft(other->get(), "list tables", "listing"), ::testing::Not(HasSubstr("t1")));
  auto bad = RunNft(fd->get(), "add chain ip nosuchtable c", "adding a chain");
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("adding a chain: nftables refused the ruleset: "));
}

}  // namespace
}  // namespace swarm::agent::network
