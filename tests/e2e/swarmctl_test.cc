// The swarm as an operator drives it: real swarmd processes on loopback, and nothing but the
// swarmctl binary against their sockets (init, join tokens, join, nodes, services, secrets,
// configs, promote/demote, autolock), or over TCP with an operator certificate. Simulated
// executors (`swarmd --executor simulated`) run the tasks whose progress swarmctl shows, so
// nothing is pulled. Only the checks that an operator certificate reaches nothing but the
// control API dial the other services directly.
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "common/random.h"
#include "common/tls.h"
#include "gtest/gtest.h"
#include "manager/keymanager/keystore.h"
#include "node/state.pb.h"
#include "node/testing/swarmd_cluster.h"
#include "proto/ca.grpc.pb.h"
#include "proto/dispatcher.grpc.pb.h"
#include "proto/raft_service.grpc.pb.h"
#include "tests/e2e/swarmctl_runner.h"

namespace swarm::node {
namespace {

// A registry on loopback that nothing serves (port 9, discard): tasks of these services fail
// to pull at once, and no test traffic leaves the machine.
const std::string kImage = "127.0.0.1:9/busybox";

using e2e::CtlResult;
using e2e::RunSwarmctl;

class SwarmctlTest : public ::testing::Test {
 protected:
  // swarmctl against node i's socket; stdin_text is piped to it.
  CtlResult Ctl(int i, const std::string& args, const std::string& stdin_text = "") {
    return RunSwarmctl("--socket " + cluster_.socket(i), args, stdin_text);
  }
  // The output of a command that must succeed, trimmed.
  std::string Ok(int i, const std::string& args, const std::string& stdin_text = "") {
    CtlResult r = Ctl(i, args, stdin_text);
    EXPECT_EQ(r.code, 0) << "swarmctl " << args << ":\n" << r.out;
    return std::string(absl::StripAsciiWhitespace(r.out));
  }
  // swarmctl over TCP to node i's listener with the certificates of tls_dir.
  CtlResult Remote(int i, const std::string& tls_dir, const std::string& args) {
    return RunSwarmctl("--host " + cluster_.addr(i) + " --tls-dir " + tls_dir, args);
  }
  // Waits until a command's output contains what.
  bool Eventually(int i, const std::string& args, const std::string& what) {
    for (int n = 0; n < 150; ++n) {
      if (absl::StrContains(Ctl(i, args).out, what)) return true;
      absl::SleepFor(absl::Milliseconds(200));
    }
    return false;
  }

  SwarmdCluster cluster_;
};

TEST_F(SwarmctlTest, AnOperatorFormsTheSwarmAndManagesItsObjects) {
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(cluster_.Start(i).ok());
  std::string out = Ok(1, "swarm init");
  EXPECT_TRUE(absl::StrContains(out, "Swarm initialized: current node (")) << out;
  EXPECT_TRUE(absl::StrContains(out, "swarmctl swarm join --token SWMTKN-1-")) << out;

  const std::string manager_token = Ok(1, "swarm join-token -q manager");
  const std::string worker_token = Ok(1, "swarm join-token -q worker");
  ASSERT_TRUE(absl::StartsWith(manager_token, "SWMTKN-1-")) << manager_token;
  for (int i : {2, 3}) {
    out = Ok(i, "swarm join --token - " + cluster_.addr(1), manager_token);
    EXPECT_TRUE(absl::StrContains(out, "joined a swarm as a manager")) << out;
  }
  out = Ok(4, "swarm join --token - " + cluster_.addr(1), worker_token);
  EXPECT_TRUE(absl::StrContains(out, "joined a swarm as a worker")) << out;
  // A token on the command line would end up in the shell history; a wrong one is refused.
  CtlResult bad = Ctl(4, "swarm join --token SWMTKN-1-nonsense " + cluster_.addr(1));
  EXPECT_NE(bad.code, 0);
  EXPECT_TRUE(absl::StartsWith(bad.out, "Error: ")) << bad.out;

  out = Ok(2, "node ls");
  EXPECT_TRUE(absl::StrContains(out, "MANAGER STATUS")) << out;
  EXPECT_TRUE(absl::StrContains(out, "Leader")) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 4) << out;  // header + 4 nodes

  // Services through a follower. Images name a registry on loopback that nothing serves: the
  // nodes' pulls fail at once instead of reaching out to Docker Hub.
  out = Ok(
      3, "service create -d --name web --replicas 3 -p 8080:80 --env A=1 " + kImage + " httpd -f");
  EXPECT_EQ(Ok(3, "service ls -q").size(), 12u);
  out = Ok(2, "service ls");
  EXPECT_TRUE(absl::StrContains(out, "web")) << out;
  EXPECT_TRUE(absl::StrContains(out, "*:8080->80/tcp")) << out;
  Ok(1, "service scale -d web=5");
  out = Ok(2, "service inspect web");
  EXPECT_TRUE(absl::StrContains(out, "\"replicas\": \"5\"")) << out;
  Ok(1, "service update -d --env-add B=2 --image " + kImage + ":1.36 web");
  EXPECT_TRUE(absl::StrContains(Ok(2, "service inspect web"), "busybox:1.36"));
  Ok(1, "service rollback -d web");
  // The spec is the one before the update again (the updated one is now the previous spec).
  out = Ok(3, "service inspect web");
  const std::string current = out.substr(0, out.find("\"previousSpec\""));
  EXPECT_FALSE(absl::StrContains(current, "busybox:1.36")) << out;
  EXPECT_TRUE(absl::StrContains(out.substr(current.size()), "busybox:1.36")) << out;
  CtlResult dup = Ctl(2, "service create -d --name web " + kImage);
  EXPECT_EQ(dup.code, 1);
  EXPECT_TRUE(absl::StrContains(dup.out, "already in use")) << dup.out;
  CtlResult bad_port = Ctl(2, "service create -d --name x -p 80:x " + kImage);
  EXPECT_EQ(bad_port.code, 1);
  EXPECT_TRUE(absl::StrContains(bad_port.out, "invalid")) << bad_port.out;

  // Secrets and configs: data from standard input, never shown back.
  Ok(1, "secret create db-password -", "hunter2");
  out = Ok(2, "secret ls");
  EXPECT_TRUE(absl::StrContains(out, "db-password")) << out;
  EXPECT_FALSE(absl::StrContains(Ok(3, "secret inspect db-password"), "hunter2"));
  Ok(1, "config create app.conf -", "key=value");
  EXPECT_TRUE(absl::StrContains(Ok(3, "config ls"), "app.conf"));
  Ok(2, "config rm app.conf");
  EXPECT_FALSE(absl::StrContains(Ok(1, "config ls"), "app.conf"));

  // Nodes: drain, labels, promote the worker and demote it again.
  const std::string info = Ok(4, "info");
  const std::string worker_id = info.substr(info.find("NodeID: ") + 8, 25);
  Ok(1, "node update --availability drain --label-add zone=east " + worker_id);
  out = Ok(2, "node inspect " + worker_id);
  EXPECT_TRUE(absl::StrContains(out, "zone")) << out;
  EXPECT_TRUE(absl::StrContains(Ok(3, "node ls"), "Drain"));
  Ok(1, "node promote " + worker_id);
  EXPECT_TRUE(Eventually(4, "info", "Is Manager: true")) << Ok(4, "info") << "\nnode 4:\n"
                                                         << cluster_.Output(4) << "\nnode 1:\n"
                                                         << cluster_.Output(1);
  EXPECT_TRUE(absl::StrContains(Ok(4, "service ls"), "web"));
  Ok(4, "node demote " + worker_id);
  EXPECT_TRUE(Eventually(4, "info", "Is Manager: false")) << Ok(4, "info");

  Ok(1, "service rm web");
  EXPECT_EQ(Ok(2, "service ls -q"), "");
}

TEST_F(SwarmctlTest, ProgressTaskTemplatesAndFormats) {
  for (int i : {1, 2}) ASSERT_TRUE(cluster_.Start(i, {"--executor", "simulated"}).ok());
  Ok(1, "swarm init");
  Ok(2, "swarm join --token - " + cluster_.addr(1), Ok(1, "swarm join-token -q worker"));

  // Without -d, create waits and shows the slots until the service has converged.
  CtlResult r = Ctl(1,
                    "service create --name sim --replicas 2 --hostname '{{.Service.Name}}-"
                    "{{.Task.Slot}}' --env 'NODE={{.Node.ID}}' " +
                        kImage);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "overall progress: 2 out of 2 tasks")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "1/2: running")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "verify: Service converged")) << r.out;
  // The nodes expanded the task templates (the simulated executor keeps what they gave).
  std::string expanded;
  for (int i : {1, 2}) {
    const std::string dir = cluster_.state_dir(i) + "/simulated";
    if (!std::filesystem::exists(dir)) continue;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (e.path().extension() == ".spec") expanded += *ReadFile(e.path().string());
    }
  }
  EXPECT_TRUE(absl::StrContains(expanded, "hostname=sim-1\n")) << expanded;
  EXPECT_TRUE(absl::StrContains(expanded, "hostname=sim-2\n")) << expanded;
  EXPECT_FALSE(absl::StrContains(expanded, "{{")) << expanded;

  // A template that names a field the context has not is refused before any task exists.
  r = Ctl(1, "service create -d --name bad --hostname '{{.Node.Hostnme}}' " + kImage);
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(absl::StrContains(r.out, "can't evaluate field Hostnme in type Node")) << r.out;
  // A service whose tasks are all rejected does not converge: the reason comes back.
  r = Ctl(1, "service create --name never --restart-delay 100ms missing/app:1");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out,
                                "Error: service never did not converge: task never.1 "
                                "failed 3 times: "))
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "image missing/app:1 is not on this node")) << r.out;
  Ok(1, "service rm never");

  r = Ctl(1, "service scale sim=3");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "sim scaled to 3\noverall progress:")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "verify: Service converged")) << r.out;

  // --format: json rows, templates over inspect with range, table headers.
  EXPECT_TRUE(absl::StrContains(Ok(1, "service ls --format '{{json .}}'"),
                                "\"Mode\":\"replicated\",\"Name\":\"sim\",\"Ports\":\"\","
                                "\"Replicas\":\"3/3\""));
  EXPECT_EQ(Ok(1,
               "service inspect --format '{{.Spec.Name}}:{{range "
               ".Spec.TaskTemplate.Container.Env}} {{.}}{{end}}' sim"),
            "sim: NODE={{.Node.ID}}");
  std::string out = Ok(1, "node ls --format 'table {{.Hostname}}\\t{{.Status}}'");
  EXPECT_TRUE(absl::StartsWith(out, "HOSTNAME   STATUS\n")) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
  out = Ok(1, "service ps --format '{{if eq .DesiredState \"Running\"}}{{.Name}}{{end}}' sim");
  EXPECT_EQ(out, "sim.1\nsim.2\nsim.3") << out;
  CtlResult bad = Ctl(1, "service ls --format '{{.Nme}}'");
  EXPECT_EQ(bad.code, 1);
  EXPECT_TRUE(absl::StrContains(bad.out, "can't evaluate field Nme")) << bad.out;
}

TEST_F(SwarmctlTest, RemoteUseWithAnOperatorCertificateOnly) {
  for (int i : {1, 2}) ASSERT_TRUE(cluster_.Start(i, {"--executor", "simulated"}).ok());
  Ok(1, "swarm init");
  Ok(2, "swarm join --token - " + cluster_.addr(1), Ok(1, "swarm join-token -q worker"));

  const std::string certs = cluster_.dir() + "/operator";
  std::string out = Ok(1, "swarm ca client-cert --out " + certs);
  EXPECT_TRUE(absl::StrContains(out, "--tls-dir " + certs)) << out;
  struct stat st {};
  ASSERT_EQ(stat((certs + "/key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // The certificate is issued through the local socket only.
  CtlResult again = Remote(1, certs, "swarm ca client-cert --out " + certs + "2");
  EXPECT_EQ(again.code, 1);
  EXPECT_TRUE(absl::StrContains(again.out, "local socket")) << again.out;

  // The operator certificate reaches the control API...
  CtlResult r = Remote(1, certs, "node ls");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3) << r.out;  // header + 2 nodes
  r = Remote(1, certs, "service create -d --name remote " + kImage);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(absl::StrContains(Ok(1, "service ls"), "remote"));

  // ... and nothing else: the dispatcher, Raft and the CA's node calls refuse it, naming the
  // role they need.
  tls::Credentials op{*ReadFile(certs + "/ca.pem"), *ReadFile(certs + "/cert.pem"),
                      *ReadFile(certs + "/key.pem")};
  auto ch = grpc::CreateCustomChannel(cluster_.addr(1), tls::ChannelCredentials(op),
                                      tls::ChannelArguments(tls::kManagerRole));
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::JoinRequest req;
    req.set_addr("127.0.0.1:1");
    api::JoinResponse resp;
    grpc::Status s = api::RaftMembership::NewStub(ch)->Join(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), "needs a swarm-manager certificate"))
        << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::IssueNodeCertificateRequest req;
    req.set_csr(tls::GenerateKeyAndCsr()->csr_pem);
    api::IssueNodeCertificateResponse resp;
    grpc::Status s = api::NodeCA::NewStub(ch)->IssueNodeCertificate(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), "swarm-manager or swarm-worker"))
        << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::SessionRequest req;
    auto stream = api::Dispatcher::NewStub(ch)->Session(&ctx, req);
    api::SessionMessage msg;
    EXPECT_FALSE(stream->Read(&msg));
    grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), "swarm-operator")) << s.error_message();
  }

  // A worker's own certificate is refused by the control API, with what to do instead.
  const std::string worker = cluster_.dir() + "/worker";
  std::filesystem::create_directories(worker);
  NodeState state;
  ASSERT_TRUE(state.ParseFromString(*ReadFile(cluster_.state_dir(2) + "/node.state")));
  auto keys = manager::keymanager::KeyStore(cluster_.state_dir(2), SecureRandom::Get()).Load();
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_TRUE(WriteFileAtomically(worker + "/ca.pem", state.root_ca_pem()).ok());
  ASSERT_TRUE(WriteFileAtomically(worker + "/cert.pem", state.cert_pem()).ok());
  ASSERT_TRUE(WriteFileAtomically(worker + "/key.pem", keys->tls_key_pem, 0600).ok());
  r = Remote(1, worker, "node ls");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out,
                                "Error: this call needs a swarm-manager or swarm-operator "
                                "certificate"))
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "presented swarm-worker")) << r.out;

  // Removing a node revokes its certificate, not the operator's (an operator is no node).
  const std::string info = Ok(2, "info");
  const std::string worker_id = info.substr(info.find("NodeID: ") + 8, 25);
  Ok(1, "node rm --force " + worker_id);
  r = Remote(1, worker, "node ls");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "revoked")) << r.out;
  r = Remote(1, certs, "node ls");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;  // header + 1 node
}

TEST_F(SwarmctlTest, AutolockAndUnlockFromStandardInput) {
  ASSERT_TRUE(cluster_.Start(1).ok());
  std::string out = Ok(1, "swarm init --autolock");
  const size_t at = out.find("SWMKEY-1-");
  ASSERT_NE(at, std::string::npos) << out;
  const std::string key = out.substr(at, out.find_first_of(" \n", at) - at);
  EXPECT_EQ(Ok(1, "swarm unlock-key -q"), key);
  Ok(1, "service create -d --name kept " + kImage);
  EXPECT_EQ(cluster_.Terminate(1), 0);
  ASSERT_TRUE(cluster_.Start(1).ok());

  CtlResult locked = Ctl(1, "service ls");
  EXPECT_EQ(locked.code, 1);
  EXPECT_TRUE(absl::StrContains(locked.out, "swarmctl swarm unlock")) << locked.out;
  CtlResult wrong = Ctl(1, "swarm unlock", "SWMKEY-1-" + std::string(43, 'A'));
  EXPECT_EQ(wrong.code, 1);
  // The key is never taken from the command line.
  EXPECT_NE(Ctl(1, "swarm unlock " + key).code, 0);
  Ok(1, "swarm unlock", key);
  EXPECT_TRUE(absl::StrContains(Ok(1, "service ls"), "kept"));
}

}  // namespace
}  // namespace swarm::node
