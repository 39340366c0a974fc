// Transport: sends Raft messages to the other managers over gRPC (service Raft in
// proto/raft_service.proto). One long-lived client stream per peer, fed by a bounded queue
// (messages and bytes) and a sender thread; snapshots go over their own stream in chunks. When
// a peer cannot be reached, or its queue is full, the message is dropped and the node is told
// (Raft retransmits; the core falls back to probing), and the sender reconnects with jittered
// exponential backoff.
//
// Owned by the Node. Thread-safe: Send/SetPeer/RemovePeer may be called from any thread; the
// callbacks run on sender threads and must not block.
#ifndef SWARM_RAFT_TRANSPORT_H_
#define SWARM_RAFT_TRANSPORT_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "raft/snapshot_io.h"
#include "raft/types.h"

namespace swarm::raft {

class Peer;

// The largest request one member sends another (one entry is at most 16 MiB, see
// Node::kMaxProposalBytes, and goes alone when larger than a batch). A gRPC server that hosts
// the Raft service must accept requests this large: with gRPC's default 4 MiB, a larger entry
// would be refused on every attempt and never commit, and nothing after it either. (No larger:
// the server's other services take requests this large from their callers too.)
inline constexpr int kMaxMessageBytes = 20 << 20;

class Transport {
 public:
  struct Options {
    uint64_t self = kNone;
    // Insecure in unit tests; mutual TLS once the CA exists.
    std::shared_ptr<grpc::ChannelCredentials> credentials;
    // Extra channel arguments (for example the TLS name to expect).
    grpc::ChannelArguments channel_arguments;
    size_t max_queued_messages = 4096;
    uint64_t max_queued_bytes = 64 << 20;
    absl::Duration min_backoff = absl::Milliseconds(50);
    absl::Duration max_backoff = absl::Seconds(2);
    // Size of one snapshot chunk on the wire.
    size_t snapshot_chunk_size = 1 << 20;
    // At most this much in one write to a peer (a single larger message goes alone).
    uint64_t max_batch_bytes = 4 << 20;
  };
  struct Callbacks {
    // A message to `id` was dropped.
    std::function<void(uint64_t id)> unreachable;
    // A snapshot to `id` was delivered (failed = false) or not.
    std::function<void(uint64_t id, bool failed)> snapshot_status;
    // The data of the snapshot a kSnap message carries (the message's own data stays empty:
    // the data is read from storage as it is sent). NOT_FOUND when a newer one replaced it.
    std::function<absl::StatusOr<StoredSnapshot>(const Snapshot&)> open_snapshot;
  };

  Transport(Options options, Callbacks callbacks);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Adds a peer, or points it at a new address.
  void SetPeer(uint64_t id, const std::string& addr);
  void RemovePeer(uint64_t id);
  // Queues m for m.to; never blocks.
  void Send(Message m);
  // Stops every sender thread; later Sends are dropped.
  void Stop();

 private:
  Options options_;
  Callbacks callbacks_;
  mutable absl::Mutex mu_;
  std::map<uint64_t, std::unique_ptr<Peer>> peers_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace swarm::raft

#endif  // SWARM_RAFT_TRANSPORT_H_
