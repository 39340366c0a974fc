// Overlay networking as a swarm runs it (issue 11): three swarmd processes, each in a network
// namespace of the test's own that plays its host (10.77.0.1-3 on a bridge in a fourth
// namespace), a service with 6 replicas on an overlay network, its tasks running as
// containers. Every check is made from inside the tasks' own network namespaces: pings
// across nodes, the embedded DNS server (service name -> VIP, tasks.NAME -> the tasks), HTTP
// to the VIP answered by the replicas in turn; scaling down removes the FDB, neighbour and
// DNS entries of the removed tasks; removing the service leaves no namespace, link or
// nftables table on any host.
//
// Needs root (namespaces, mounts, cgroups). Nothing is created in the namespace the test runs
// in, and no traffic leaves the test's namespaces.
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/network/dns_message.h"
#include "agent/network/netlink.h"
#include "agent/network/netns.h"
#include "agent/network/nftables.h"
#include "agent/network/testing/test_hosts.h"
#include "agent/runtime/image_store.h"
#include "agent/runtime/testing/test_image.h"
#include "common/ip.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/testing/swarmd_cluster.h"

namespace swarm {
namespace {

namespace fs = std::filesystem;
namespace net = agent::network;
using net::testing::Ip;
using node::SetTimeout;
using node::SwarmdCluster;

constexpr int kNodes = 3;

std::string HostPart(const std::string& cidr) { return cidr.substr(0, cidr.find('/')); }

bool Eventually(const std::function<bool()>& f, absl::Duration timeout = absl::Seconds(60)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (f()) return true;
    absl::SleepFor(absl::Milliseconds(200));
  }
  return f();
}

constexpr int kClient = 100;  // a host outside the swarm, 10.77.0.100

class OverlaySwarmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "needs root: namespaces, mounts and cgroups";
    std::string tmpl = "/tmp/ovswarm-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    std::vector<int> hosts = {kClient};
    for (int i = 1; i <= kNodes; ++i) hosts.push_back(i);
    auto made = net::testing::BridgedHosts::Create(dir_, "10.77.0.", hosts);
    ASSERT_TRUE(made.ok()) << made.status();
    hosts_ = *std::move(made);
    // One busybox image, loaded into every node's image store (the hosts reach no registry).
    ASSERT_TRUE(agent::runtime::testing::BuildBusyboxRootfs(dir_ + "/rootfs").ok());
    ASSERT_TRUE(agent::runtime::testing::BuildOciLayout({dir_ + "/rootfs"}, dir_ + "/layout").ok());
    cluster_ = std::make_unique<SwarmdCluster>();
    for (int i = 1; i <= kNodes; ++i) {
      auto images = agent::runtime::ImageStore::Open(cluster_->state_dir(i) + "/images");
      ASSERT_TRUE(images.ok()) << images.status();
      auto loaded = (*images)->LoadOciLayout(dir_ + "/layout", "busybox:latest");
      ASSERT_TRUE(loaded.ok()) << loaded.status();
      cluster_->SetHost(i, hosts_->path(i), hosts_->ip(i));
      absl::Status s = cluster_->Start(i);
      ASSERT_TRUE(s.ok()) << s;
    }
    auto init = cluster_->Init(1);
    ASSERT_TRUE(init.ok()) << init.status() << cluster_->Output(1);
    for (int i = 2; i <= kNodes; ++i) {
      auto joined = cluster_->Join(i, 1, /*manager=*/false);
      ASSERT_TRUE(joined.ok()) << joined.status() << cluster_->Output(i);
    }
    ASSERT_TRUE(Eventually([&] { return NodeIndexes().size() == kNodes; })) << cluster_->Output(1);
  }

  void TearDown() override {
    cluster_.reset();
    hosts_.reset();
    std::error_code ec;
    fs::remove_all(dir_ + "/rootfs", ec);
    fs::remove_all(dir_ + "/layout", ec);
  }

  ~OverlaySwarmTest() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Ready nodes' IDs -> their index (hostname node-i).
  std::map<std::string, int> NodeIndexes() {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::ListNodesResponse resp;
    if (!cluster_->control(1).ListNodes(&ctx, api::ListNodesRequest(), &resp).ok()) return {};
    std::map<std::string, int> out;
    for (const api::Node& n : resp.nodes()) {
      if (n.status().state() != api::NODE_STATE_READY) continue;
      out[n.id()] = std::stoi(n.description().hostname().substr(5));
    }
    return out;
  }

  std::string CreateNetwork(const std::string& name) {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::CreateNetworkRequest req;
    req.mutable_spec()->mutable_annotations()->set_name(name);
    req.mutable_spec()->mutable_driver_config()->set_name("overlay");
    api::CreateNetworkResponse resp;
    grpc::Status s = cluster_->control(1).CreateNetwork(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.network().id();
  }

  // An HTTP server answering / with its hostname (web-<slot>) and /cgi-bin/addr with the
  // client's address as it sees it; on the network, or publishing 8080 in ingress mode.
  std::string CreateWeb(const std::string& network_id, uint64_t replicas,
                        uint32_t published_port = 0,
                        api::PublishMode mode = api::PUBLISH_MODE_INGRESS) {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::CreateServiceRequest req;
    api::ServiceSpec* spec = req.mutable_spec();
    spec->mutable_annotations()->set_name("web");
    api::ContainerSpec* c = spec->mutable_task_template()->mutable_container();
    c->set_image("busybox");
    c->set_hostname("web-{{.Task.Slot}}");
    for (const char* a :
         {"sh", "-c",
          "mkdir -p /www/cgi-bin && hostname > /www/index.html && "
          "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' "
          "> /www/cgi-bin/addr && chmod +x /www/cgi-bin/addr && exec httpd -f -p ${PORT:-80} "
          "-h /www"}) {
      c->add_args(a);
    }
    c->mutable_stop_grace_period()->set_seconds(1);
    if (!network_id.empty()) spec->mutable_task_template()->add_networks()->set_target(network_id);
    if (published_port != 0) {
      api::PortConfig* p = spec->mutable_endpoint_spec()->add_ports();
      p->set_target_port(80);
      p->set_published_port(published_port);
      p->set_publish_mode(mode);
    }
    spec->mutable_replicated()->set_replicas(replicas);
    api::CreateServiceResponse resp;
    grpc::Status s = cluster_->control(1).CreateService(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.service().id();
  }

  absl::StatusOr<api::Service> GetService(const std::string& id) {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::GetServiceRequest req;
    req.set_service_id(id);
    api::GetServiceResponse resp;
    grpc::Status s = cluster_->control(1).GetService(&ctx, req, &resp);
    if (!s.ok()) return absl::UnknownError(s.error_message());
    return resp.service();
  }

  // Changes the service's spec; a write that raced the managers' own ("update out of
  // sequence") is made again from a fresh read.
  absl::Status UpdateSpec(const std::string& service_id,
                          const std::function<void(api::ServiceSpec&)>& change) {
    absl::Status last;
    for (int attempt = 0; attempt < 10; ++attempt) {
      ASSIGN_OR_RETURN(api::Service service, GetService(service_id));
      api::UpdateServiceRequest req;
      req.set_service_id(service_id);
      *req.mutable_service_version() = service.meta().version();
      *req.mutable_spec() = service.spec();
      change(*req.mutable_spec());
      grpc::ClientContext ctx;
      SetTimeout(ctx);
      api::UpdateServiceResponse resp;
      grpc::Status st = cluster_->control(1).UpdateService(&ctx, req, &resp);
      if (st.ok()) return absl::OkStatus();
      last = absl::UnknownError(st.error_message());
      absl::SleepFor(absl::Milliseconds(100));
    }
    return last;
  }

  std::vector<api::Task> Running(const std::string& service_id) {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::ListTasksRequest req;
    req.mutable_filters()->add_service_ids(service_id);
    api::ListTasksResponse resp;
    if (!cluster_->control(1).ListTasks(&ctx, req, &resp).ok()) return {};
    std::vector<api::Task> out;
    for (const api::Task& t : resp.tasks()) {
      if (t.status().state() == api::TASK_STATE_RUNNING &&
          t.desired_state() == api::TASK_STATE_RUNNING) {
        out.push_back(t);
      }
    }
    return out;
  }

  // The task's network namespace on its node.
  std::string TaskNetns(const api::Task& t) {
    return absl::StrCat(cluster_->state_dir(nodes_[t.node_id()]), "/netns/t-", t.id());
  }
  static std::string TaskIp(const api::Task& t) { return HostPart(t.networks(0).addresses(0)); }

  // The addresses the embedded DNS server gives for `name`, asked from inside netns.
  absl::StatusOr<std::set<std::string>> Resolve(const std::string& netns, const std::string& name) {
    ASSIGN_OR_RETURN(net::ScopedFd fd, net::testing::SocketIn(netns, AF_INET, SOCK_DGRAM));
    timeval tv{.tv_sec = 2, .tv_usec = 0};
    setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    net::dns::Message q;
    q.header.id = 4242;
    q.header.rd = true;
    q.questions.push_back({.name = name});
    const std::string wire = net::dns::BuildMessage(q);
    sockaddr_in to = ToSockaddr(Ip("127.0.0.11"), 53);
    if (sendto(fd.get(), wire.data(), wire.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) <
        0) {
      return absl::ErrnoToStatus(errno, "sending a DNS query");
    }
    char buf[4096];
    const ssize_t n = recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0) return absl::ErrnoToStatus(errno, "no DNS answer for " + name);
    ASSIGN_OR_RETURN(net::dns::Message r, net::dns::ParseMessage({buf, static_cast<size_t>(n)}));
    if (r.header.rcode != net::dns::kRcodeNoError) {
      return absl::NotFoundError(absl::StrCat(name, ": rcode ", r.header.rcode));
    }
    std::set<std::string> out;
    for (const net::dns::ResourceRecord& a : r.answers) {
      if (a.type != net::dns::kTypeA || a.rdata.size() != 4) continue;
      IpAddress ip;
      std::copy(a.rdata.begin(), a.rdata.end(), ip.bytes.begin());
      out.insert(net::FormatIp(ip));
    }
    return out;
  }

  // GET path from inside netns; returns the body.
  absl::StatusOr<std::string> HttpGet(const std::string& netns, const std::string& ip,
                                      int port = 80, const std::string& path = "/") {
    ASSIGN_OR_RETURN(net::ScopedFd fd, net::testing::SocketIn(netns, AF_INET, SOCK_STREAM));
    timeval tv{.tv_sec = 3, .tv_usec = 0};
    setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in to = ToSockaddr(Ip(ip.c_str()), port);
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
      return absl::ErrnoToStatus(errno, "connecting to " + ip);
    }
    const std::string req = "GET " + path + " HTTP/1.0\r\n\r\n";
    if (send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) < 0) {
      return absl::ErrnoToStatus(errno, "sending to " + ip);
    }
    std::string resp;
    char buf[4096];
    for (ssize_t n; (n = recv(fd.get(), buf, sizeof buf, 0)) > 0;) resp.append(buf, n);
    // A CGI script's headers end with a bare "\n\n", which busybox httpd passes on.
    size_t body = resp.find("\r\n\r\n");
    size_t skip = 4;
    if (body == std::string::npos) {
      body = resp.find("\n\n");
      skip = 2;
    }
    if (body == std::string::npos) return absl::UnknownError("no HTTP response: " + resp);
    std::string out = resp.substr(body + skip);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  // Every ov-* and t-* namespace of node i.
  std::vector<std::string> Namespaces(int i) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(cluster_->state_dir(i) + "/netns", ec)) {
      out.push_back(e.path().filename().string());
    }
    return out;
  }

  void ExpectNothingLeft() {
    for (int i = 1; i <= kNodes; ++i) {
      EXPECT_TRUE(Eventually([&] { return Namespaces(i).empty(); }, absl::Seconds(30)))
          << "node " << i << " keeps " << Namespaces(i).size() << " namespaces";
      auto nl = net::Netlink::OpenAt(hosts_->path(i));
      ASSERT_TRUE(nl.ok());
      std::set<std::string> names;
      EXPECT_TRUE(Eventually(
          [&] {
            auto links = (*nl)->ListLinks();
            names.clear();
            if (links.ok()) {
              for (const auto& l : *links) names.insert(l.name);
            }
            return names == std::set<std::string>{"lo", "eth0"};
          },
          absl::Seconds(10)))
          << "node " << i << " keeps links: " << names.size();
      auto fd = net::OpenNetns(hosts_->path(i));
      ASSERT_TRUE(fd.ok());
      auto tables = net::RunNft(fd->get(), "list tables", "listing tables");
      ASSERT_TRUE(tables.ok()) << tables.status();
      EXPECT_EQ(*tables, "") << "node " << i;
    }
  }

  void RemoveService(const std::string& service_id) {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::RemoveServiceRequest req;
    req.set_service_id(service_id);
    api::RemoveServiceResponse resp;
    ASSERT_TRUE(cluster_->control(1).RemoveService(&ctx, req, &resp).ok());
  }

  std::string dir_;
  std::unique_ptr<net::testing::BridgedHosts> hosts_;
  std::unique_ptr<SwarmdCluster> cluster_;
  std::map<std::string, int> nodes_;
};

TEST_F(OverlaySwarmTest, TasksReachEachOtherByAddressNameAndVipAcrossNodes) {
  nodes_ = NodeIndexes();
  const std::string network_id = CreateNetwork("appnet");
  const std::string service_id = CreateWeb(network_id, 6);
  ASSERT_TRUE(Eventually([&] { return Running(service_id).size() == 6; }))
      << cluster_->Output(1) << cluster_->Output(2);
  std::vector<api::Task> tasks = Running(service_id);
  std::set<std::string> ips, used_nodes;
  for (const api::Task& t : tasks) {
    ips.insert(TaskIp(t));
    used_nodes.insert(t.node_id());
  }
  EXPECT_EQ(ips.size(), 6u);
  EXPECT_EQ(used_nodes.size(), 3u) << "replicas spread over the nodes";
  auto service = GetService(service_id);
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_EQ(service->endpoint().virtual_ips_size(), 1);
  const std::string vip = HostPart(service->endpoint().virtual_ips(0).addr());

  // Every task pings every other one, across nodes.
  for (const api::Task& from : tasks) {
    for (const api::Task& to : tasks) {
      if (from.id() == to.id()) continue;
      auto ok = net::testing::Ping(TaskNetns(from), Ip(TaskIp(to).c_str()));
      ASSERT_TRUE(ok.ok()) << ok.status();
      EXPECT_TRUE(*ok) << TaskIp(from) << " (node " << nodes_[from.node_id()] << ") -> "
                       << TaskIp(to) << " (node " << nodes_[to.node_id()] << ")";
    }
  }

  // Names: the service is its VIP, tasks.web its tasks, from every task. A task's RUNNING
  // state reaches the other nodes' records a moment after the store has it.
  for (const api::Task& from : tasks) {
    EXPECT_TRUE(Eventually(
        [&] {
          return Resolve(TaskNetns(from), "tasks.web").value_or(std::set<std::string>{}) == ips;
        },
        absl::Seconds(10)));
  }
  for (const api::Task& from : tasks) {
    auto by_name = Resolve(TaskNetns(from), "web");
    ASSERT_TRUE(by_name.ok()) << by_name.status();
    EXPECT_EQ(*by_name, std::set<std::string>{vip});
    auto by_tasks = Resolve(TaskNetns(from), "tasks.web");
    ASSERT_TRUE(by_tasks.ok()) << by_tasks.status();
    EXPECT_EQ(*by_tasks, ips);
  }

  // The VIP from a task on another node than some replicas: 6 connections, 6 replicas in turn.
  const api::Task& client = tasks[0];
  std::set<std::string> answered;
  for (int i = 0; i < 6; ++i) {
    auto body = HttpGet(TaskNetns(client), vip);
    ASSERT_TRUE(body.ok()) << body.status();
    answered.insert(*body);
  }
  EXPECT_EQ(answered.size(), 6u) << "the VIP spreads new connections over every replica";
  for (const std::string& b : answered) EXPECT_TRUE(absl::StartsWith(b, "web-")) << b;

  // Scale down to 2: the removed tasks leave the FDB, neighbour and DNS tables everywhere.
  {
    absl::Status st = UpdateSpec(
        service_id, [](api::ServiceSpec& s) { s.mutable_replicated()->set_replicas(2); });
    ASSERT_TRUE(st.ok()) << st;
  }
  ASSERT_TRUE(Eventually([&] { return Running(service_id).size() == 2; }));
  std::vector<api::Task> kept = Running(service_id);
  std::set<std::string> kept_ips = {TaskIp(kept[0]), TaskIp(kept[1])};
  std::set<std::string> removed_ips;
  for (const std::string& ip : ips) {
    if (!kept_ips.contains(ip)) removed_ips.insert(ip);
  }
  auto tables_clean = [&]() -> bool {
    for (int i = 1; i <= kNodes; ++i) {
      for (const std::string& ns : Namespaces(i)) {
        if (!absl::StartsWith(ns, "ov-")) continue;
        auto nl = net::Netlink::OpenAt(cluster_->state_dir(i) + "/netns/" + ns);
        if (!nl.ok()) return false;
        auto neigh = (*nl)->ListNeighbors("vxlan0");
        auto fdb = (*nl)->ListFdb("vxlan0");
        if (!neigh.ok() || !fdb.ok()) return false;
        for (const auto& n : *neigh) {
          if (removed_ips.contains(net::FormatIp(n.ip))) return false;
        }
        for (const auto& f : *fdb) {
          for (const std::string& ip : removed_ips) {
            if (f.mac == net::MacFromIpv4(Ip(ip.c_str()))) return false;
          }
        }
      }
    }
    return true;
  };
  EXPECT_TRUE(Eventually(tables_clean, absl::Seconds(20)));
  for (const api::Task& t : kept) {
    EXPECT_TRUE(Eventually(
        [&] {
          return Resolve(TaskNetns(t), "tasks.web").value_or(std::set<std::string>{}) == kept_ips;
        },
        absl::Seconds(10)));
    auto by_tasks = Resolve(TaskNetns(t), "tasks.web");
    ASSERT_TRUE(by_tasks.ok()) << by_tasks.status();
    EXPECT_EQ(*by_tasks, kept_ips);
    std::set<std::string> answered_now;
    for (int i = 0; i < 4; ++i) {
      auto body = HttpGet(TaskNetns(t), vip);
      ASSERT_TRUE(body.ok()) << body.status();
      answered_now.insert(*body);
    }
    EXPECT_EQ(answered_now.size(), 2u);
  }

  // Remove the service: no namespace, veth, bridge or nftables table of ours on any host.
  RemoveService(service_id);
  ExpectNothingLeft();
}

TEST_F(OverlaySwarmTest, APublishedPortAnswersOnEveryNodeAndSeesTheClientsAddress) {
  nodes_ = NodeIndexes();
  const std::string service_id = CreateWeb("", 1, 8080);
  ASSERT_TRUE(Eventually([&] { return Running(service_id).size() == 1; })) << cluster_->Output(1);
  const int with_task = nodes_[Running(service_id)[0].node_id()];
  // Every node answers, the two without a task too, and the server sees the client itself
  // (Docker's routing mesh shows it the ingress node's address instead).
  for (int i = 1; i <= kNodes; ++i) {
    absl::StatusOr<std::string> seen;
    EXPECT_TRUE(Eventually(
        [&] {
          seen = HttpGet(hosts_->path(kClient), hosts_->ip(i), 8080, "/cgi-bin/addr");
          return seen.ok();
        },
        absl::Seconds(20)))
        << "node " << i << (i == with_task ? " (runs the task)" : " (no task)") << ": "
        << seen.status() << cluster_->Output(i);
    if (seen.ok()) {
      // busybox httpd listens on a dual-stack socket: "[::ffff:10.77.0.100]".
      EXPECT_EQ(*seen, "[::ffff:" + hosts_->ip(kClient) + "]") << "through node " << i;
    }
  }

  // Scaled to 3, one per node: connections through any node reach every replica.
  {
    absl::Status st = UpdateSpec(
        service_id, [](api::ServiceSpec& s) { s.mutable_replicated()->set_replicas(3); });
    ASSERT_TRUE(st.ok()) << st;
  }
  ASSERT_TRUE(Eventually([&] { return Running(service_id).size() == 3; }));
  std::set<std::string> answered;
  ASSERT_TRUE(Eventually([&] {
    for (int i = 1; i <= kNodes; ++i) {
      if (auto body = HttpGet(hosts_->path(kClient), hosts_->ip(i), 8080); body.ok()) {
        answered.insert(*body);
      }
    }
    return answered.size() == 3;
  })) << answered.size();

  RemoveService(service_id);
  ExpectNothingLeft();
}

TEST_F(OverlaySwarmTest, ARestartedNodeReconnectsTheTasksItAdopts) {
  nodes_ = NodeIndexes();
  const std::string network_id = CreateNetwork("appnet");
  const std::string service_id = CreateWeb(network_id, 3, 8080);
  ASSERT_TRUE(Eventually([&] { return Running(service_id).size() == 3; })) << cluster_->Output(1);
  std::vector<api::Task> before = Running(service_id);
  // kill -9 a worker that runs a task: its containers keep running, its overlays go with it.
  int restarted = 0;
  for (const api::Task& t : before) restarted = std::max(restarted, nodes_[t.node_id()]);
  ASSERT_GT(restarted, 1);
  cluster_->Kill(restarted);
  absl::Status started = cluster_->Start(restarted);
  ASSERT_TRUE(started.ok()) << started;

  // The same tasks (adopted, not restarted) reach each other and answer through the mesh.
  std::set<std::string> ids;
  for (const api::Task& t : before) ids.insert(t.id());
  for (const api::Task& from : before) {
    for (const api::Task& to : before) {
      if (from.id() == to.id()) continue;
      EXPECT_TRUE(Eventually(
          [&] {
            return net::testing::Ping(TaskNetns(from), Ip(TaskIp(to).c_str()), 500).value_or(false);
          },
          absl::Seconds(20)))
          << "node " << nodes_[from.node_id()] << " -> node " << nodes_[to.node_id()]
          << cluster_->Output(restarted);
    }
  }
  std::set<std::string> answered;
  EXPECT_TRUE(Eventually([&] {
    if (auto body = HttpGet(hosts_->path(kClient), hosts_->ip(restarted), 8080); body.ok()) {
      answered.insert(*body);
    }
    return answered.size() == 3;
  })) << answered.size()
      << cluster_->Output(restarted);
  std::set<std::string> after;
  for (const api::Task& t : Running(service_id)) after.insert(t.id());
  EXPECT_EQ(after, ids) << "no task was restarted";

  RemoveService(service_id);
  ExpectNothingLeft();
}

TEST_F(OverlaySwarmTest, OnTheHostNetworkATaskListensOnItsNodesAddress) {
  nodes_ = NodeIndexes();
  const std::string service_id = CreateWeb("host", 1);
  {
    // The same server on port 8081 of the node's own namespace.
    absl::Status st = UpdateSpec(service_id, [](api::ServiceSpec& s) {
      s.mutable_task_template()->mutable_container()->add_env("PORT=8081");
    });
    ASSERT_TRUE(st.ok()) << st;
  }
  ASSERT_TRUE(Eventually([&] {
    std::vector<api::Task> running = Running(service_id);
    return running.size() == 1 && running[0].spec().container().env_size() == 1;
  }));
  const api::Task task = Running(service_id)[0];
  EXPECT_EQ(task.networks_size(), 0) << "the host network is not allocated";
  const int node = nodes_[task.node_id()];
  absl::StatusOr<std::string> seen;
  EXPECT_TRUE(Eventually(
      [&] {
        seen = HttpGet(hosts_->path(kClient), hosts_->ip(node), 8081, "/cgi-bin/addr");
        return seen.ok();
      },
      absl::Seconds(10)))
      << seen.status();
  if (seen.ok()) {
    EXPECT_THAT(*seen, ::testing::HasSubstr(hosts_->ip(kClient)));
  }
  RemoveService(service_id);
  ExpectNothingLeft();
}

TEST_F(OverlaySwarmTest, AHostModePortAnswersOnlyOnTheNodeOfItsTask) {
  nodes_ = NodeIndexes();
  const std::string service_id = CreateWeb("", 1, 8082, api::PUBLISH_MODE_HOST);
  ASSERT_TRUE(Eventually([&] { return Running(service_id).size() == 1; })) << cluster_->Output(1);
  const int node = nodes_[Running(service_id)[0].node_id()];
  absl::StatusOr<std::string> seen;
  EXPECT_TRUE(Eventually(
      [&] {
        seen = HttpGet(hosts_->path(kClient), hosts_->ip(node), 8082, "/cgi-bin/addr");
        return seen.ok();
      },
      absl::Seconds(10)))
      << seen.status() << cluster_->Output(node);
  if (seen.ok()) {
    EXPECT_EQ(*seen, "[::ffff:" + hosts_->ip(kClient) + "]");
  }
  for (int i = 1; i <= kNodes; ++i) {
    if (i == node) continue;
    EXPECT_FALSE(HttpGet(hosts_->path(kClient), hosts_->ip(i), 8082).ok())
        << "node " << i << " runs no task of it";
  }
  RemoveService(service_id);
  ExpectNothingLeft();
}

}  // namespace
}  // namespace swarm
