// raftkvctl: a command-line client of raftkv, for demos and manual checks.
//   raftkvctl --server 127.0.0.1:7001 status
//   raftkvctl --server 127.0.0.1:7001 put KEY VALUE
//   raftkvctl --server 127.0.0.1:7001 get KEY
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>

#include "raft/tools/raftkv.grpc.pb.h"

namespace {

int Fail(const std::string& what, const grpc::Status& s) {
  std::cerr << "raftkvctl: " << what << ": " << s.error_message() << "\n";
  return 1;
}

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"raftkvctl: talk to a raftkv member"};
  std::string server = "127.0.0.1:7001";
  app.add_option("--server", server, "member address (host:port)");
  app.require_subcommand(1);
  CLI::App* status = app.add_subcommand("status", "show the member's view of the cluster");
  CLI::App* put = app.add_subcommand("put", "write a key (through the leader)");
  CLI::App* get = app.add_subcommand("get", "read a key (linearizable)");
  std::string key, value;
  put->add_option("key", key)->required();
  put->add_option("value", value)->required();
  get->add_option("key", key)->required();
  CLI11_PARSE(app, argc, argv);

  auto stub = swarm::raftkv::RaftKV::NewStub(
      grpc::CreateChannel(server, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  if (status->parsed()) {
    swarm::raftkv::StatusResponse resp;
    grpc::Status s = stub->Status(&ctx, swarm::raftkv::StatusRequest(), &resp);
    if (!s.ok()) return Fail("status of " + server, s);
    std::cout << "id=" << resp.id() << " state=" << resp.state() << " term=" << resp.term()
              << " leader=" << resp.leader() << " commit=" << resp.commit()
              << " applied=" << resp.applied() << " voters=" << resp.voters_size() << "\n";
  } else if (put->parsed()) {
    swarm::raftkv::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    swarm::raftkv::PutResponse resp;
    grpc::Status s = stub->Put(&ctx, req, &resp);
    if (!s.ok()) return Fail("put " + key, s);
    std::cout << "committed at index " << resp.index() << "\n";
  } else {
    swarm::raftkv::GetRequest req;
    req.set_key(key);
    swarm::raftkv::GetResponse resp;
    grpc::Status s = stub->Get(&ctx, req, &resp);
    if (!s.ok()) return Fail("get " + key, s);
    if (!resp.found()) {
      std::cerr << "raftkvctl: " << key << " is not set\n";
      return 1;
    }
    std::cout << resp.value() << "\n";
  }
  return 0;
}
