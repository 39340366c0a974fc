#include "cli/format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace swarm::cli {
namespace {

using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

void SetTime(absl::Time t, google::protobuf::Timestamp* ts) {
  ts->set_seconds(absl::ToUnixSeconds(t));
}

TEST(HumanDuration, DockerWords) {
  EXPECT_EQ(HumanDuration(absl::Milliseconds(300)), "Less than a second");
  EXPECT_EQ(HumanDuration(absl::Seconds(1)), "1 second");
  EXPECT_EQ(HumanDuration(absl::Seconds(5)), "5 seconds");
  EXPECT_EQ(HumanDuration(absl::Seconds(59)), "59 seconds");
  EXPECT_EQ(HumanDuration(absl::Seconds(60)), "About a minute");
  EXPECT_EQ(HumanDuration(absl::Seconds(119)), "About a minute");
  EXPECT_EQ(HumanDuration(absl::Minutes(2)), "2 minutes");
  EXPECT_EQ(HumanDuration(absl::Minutes(59)), "59 minutes");
  EXPECT_EQ(HumanDuration(absl::Minutes(60)), "About an hour");
  EXPECT_EQ(HumanDuration(absl::Minutes(89)), "About an hour");
  EXPECT_EQ(HumanDuration(absl::Minutes(90)), "2 hours");
  EXPECT_EQ(HumanDuration(absl::Hours(47)), "47 hours");
  EXPECT_EQ(HumanDuration(absl::Hours(48)), "2 days");
  EXPECT_EQ(HumanDuration(absl::Hours(24 * 14)), "2 weeks");
  EXPECT_EQ(HumanDuration(absl::Hours(24 * 90)), "3 months");
  EXPECT_EQ(HumanDuration(absl::Hours(24 * 365 * 3)), "3 years");
  EXPECT_EQ(HumanDuration(-absl::Seconds(5)), "Less than a second");
}

TEST(TimeAgo, RelativeToInjectedNow) {
  EXPECT_EQ(TimeAgo(kNow - absl::Seconds(5), kNow), "5 seconds ago");
  EXPECT_EQ(TimeAgo(kNow - absl::Seconds(70), kNow), "About a minute ago");
  EXPECT_EQ(TimeAgo(kNow - absl::Hours(2), kNow), "2 hours ago");
  EXPECT_EQ(TimeAgo(absl::UnixEpoch(), kNow), "");
}

TEST(Names, DockerCapitalization) {
  EXPECT_EQ(TaskStateName(api::TASK_STATE_RUNNING), "Running");
  EXPECT_EQ(TaskStateName(api::TASK_STATE_SHUTDOWN), "Shutdown");
  EXPECT_EQ(TaskStateName(static_cast<api::TaskState>(5)), "State(5)");
  EXPECT_EQ(NodeStateName(api::NODE_STATE_READY), "Ready");
  EXPECT_EQ(AvailabilityName(api::NODE_AVAILABILITY_DRAIN), "Drain");
  api::Node n;
  EXPECT_EQ(ManagerStatusName(n), "");
  n.mutable_manager_status()->set_reachability(api::REACHABILITY_UNREACHABLE);
  EXPECT_EQ(ManagerStatusName(n), "Unreachable");
  n.mutable_manager_status()->set_leader(true);
  EXPECT_EQ(ManagerStatusName(n), "Leader");
  EXPECT_EQ(TruncateId("abcdefghijklmnopqrstuvwxy", false), "abcdefghijkl");
  EXPECT_EQ(TruncateId("abcdefghijklmnopqrstuvwxy", true), "abcdefghijklmnopqrstuvwxy");
  EXPECT_EQ(ImageWithoutDigest("nginx:1.25@sha256:abc"), "nginx:1.25");
  EXPECT_EQ(ImageWithoutDigest("nginx"), "nginx");
}

TEST(NaturalLess, NumbersCompareAsNumbers) {
  EXPECT_TRUE(NaturalLess("node2", "node10"));
  EXPECT_FALSE(NaturalLess("node10", "node2"));
  EXPECT_TRUE(NaturalLess("a", "b"));
  EXPECT_TRUE(NaturalLess("web", "web.1"));
  EXPECT_FALSE(NaturalLess("x", "x"));
  EXPECT_TRUE(NaturalLess("n007", "n8"));
}

TEST(RenderTable, TabwriterWidths) {
  // Columns are at least 10 wide and 3 wider than their longest cell; the last is not padded.
  EXPECT_EQ(RenderTable({{"ID", "NAME", "MODE"}, {"abcdefghijkl", "web", "replicated"}}),
            "ID             NAME      MODE\n"
            "abcdefghijkl   web       replicated\n");
  EXPECT_EQ(RenderTable({{"A", "\xe2\x80\xa6", "Z"}, {"x", "y", "z"}}),
            "A         \xe2\x80\xa6         Z\n"
            "x         y         z\n");
}

api::Service MakeService(const std::string& id, const std::string& name) {
  api::Service s;
  s.set_id(id);
  s.mutable_spec()->mutable_annotations()->set_name(name);
  s.mutable_spec()->mutable_task_template()->mutable_container()->set_image(
      "nginx:1.25@sha256:0123");
  return s;
}

TEST(ServiceListing, DockerColumns) {
  api::Service web = MakeService("aaaaaaaaaaaaaaaaaaaaaaaaa", "web");
  web.mutable_spec()->mutable_replicated()->set_replicas(3);
  auto* p = web.mutable_endpoint()->add_ports();
  p->set_published_port(8080);
  p->set_target_port(80);
  p = web.mutable_endpoint()->add_ports();
  p->set_published_port(30000);
  p->set_target_port(53);
  p->set_protocol(api::PORT_PROTOCOL_UDP);
  p = web.mutable_endpoint()->add_ports();
  p->set_published_port(30001);
  p->set_target_port(54);
  p->set_protocol(api::PORT_PROTOCOL_UDP);
  p = web.mutable_endpoint()->add_ports();
  p->set_published_port(9000);
  p->set_target_port(9000);
  p->set_publish_mode(api::PUBLISH_MODE_HOST);  // not shown by service ls
  api::Service agent = MakeService("bbbbbbbbbbbbbbbbbbbbbbbbb", "agent");
  agent.mutable_spec()->mutable_global();
  api::Service job = MakeService("ccccccccccccccccccccccccc", "migrate");
  job.mutable_spec()->mutable_replicated_job()->set_total_completions(4);

  api::ServiceStatus s1, s2, s3;
  s1.set_service_id(web.id());
  s1.set_desired_tasks(3);
  s1.set_running_tasks(2);
  s2.set_service_id(agent.id());
  s2.set_desired_tasks(5);
  s2.set_running_tasks(5);
  s3.set_service_id(job.id());
  s3.set_desired_tasks(2);
  s3.set_running_tasks(1);
  s3.set_completed_tasks(1);
  Listing l = ServiceListing({web, agent, job}, {s1, s2, s3}, false);
  auto text = RenderListing(l, {});
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text,
            "ID             NAME      MODE             REPLICAS              IMAGE        PORTS\n"
            "bbbbbbbbbbbb   agent     global           5/5                   nginx:1.25   \n"
            "cccccccccccc   migrate   replicated job   1/2 (1/4 completed)   nginx:1.25   \n"
            "aaaaaaaaaaaa   web       replicated       2/3                   nginx:1.25   "
            "*:8080->80/tcp, *:30000-30001->53-54/udp\n");

  auto quiet = RenderListing(l, {.quiet = true});
  ASSERT_TRUE(quiet.ok());
  EXPECT_EQ(*quiet, "bbbbbbbbbbbb\ncccccccccccc\naaaaaaaaaaaa\n");

  // Without a status the desired count comes from the spec.
  Listing no_status = ServiceListing({web}, {}, true);
  EXPECT_EQ(no_status.rows[0][0], web.id());
  EXPECT_EQ(no_status.rows[0][3], "0/3");
}

TEST(RenderListing, JsonAndTemplates) {
  Listing l;
  l.columns = {{"ID", "ID"}, {"Name", "NAME"}};
  l.rows = {{"x1", "web"}, {"x2", "db \"main\""}};
  EXPECT_EQ(*RenderListing(l, {.format = "json"}),
            "{\"ID\":\"x1\",\"Name\":\"web\"}\n{\"ID\":\"x2\",\"Name\":\"db \\\"main\\\"\"}\n");
  EXPECT_EQ(*RenderListing(l, {.format = "{{.Name}}: {{ .ID }}"}), "web: x1\ndb \"main\": x2\n");
  EXPECT_EQ(*RenderListing(l, {.format = "table {{.Name}}\\t{{.ID}}"}),
            "NAME        ID\n"
            "web         x1\n"
            "db \"main\"   x2\n");
  EXPECT_EQ(*RenderListing(l, {.format = "table"}),
            "ID        NAME\nx1        web\nx2        db \"main\"\n");
  auto bad = RenderListing(l, {.format = "{{.Colour}}"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "invalid --format: template: :1:2: executing \"\" at <.Colour>: can't evaluate field "
            "Colour in type row (fields: {{.ID}}, {{.Name}}, or {{json .}}; or use --format json)");
  auto unclosed = RenderListing(l, {.format = "{{.Name }"});
  ASSERT_FALSE(unclosed.ok());
  EXPECT_EQ(unclosed.status().message(),
            "invalid --format: template: :1:8: unexpected \"}\" in operand");
  Listing empty;
  empty.columns = l.columns;
  EXPECT_FALSE(RenderListing(empty, {.format = "{{.Nope}}"}).ok());
}

// Golden outputs of the template language through a listing: functions, pipelines,
// conditions, and tables whose headers come from the same template.
TEST(RenderListing, TemplateGolden) {
  Listing l;
  l.columns = {{"ID", "ID"}, {"Name", "NAME"}, {"Image", "IMAGE"}};
  l.rows = {{"x1", "web", "nginx:1.25"}, {"x2", "db", "postgres:16"}};
  EXPECT_EQ(*RenderListing(l, {.format = "{{.Name | upper}}\\t{{lower .ID}}"}),
            "WEB\tx1\nDB\tx2\n");
  EXPECT_EQ(*RenderListing(l, {.format = "{{if eq .Name \"db\"}}database{{else}}{{.Name}}{{end}}"}),
            "web\ndatabase\n");
  EXPECT_EQ(*RenderListing(l, {.format = "{{join (split .Image \":\") \" tag \"}}"}),
            "nginx tag 1.25\npostgres tag 16\n");
  EXPECT_EQ(
      *RenderListing(l, {.format = "{{range $k, $v := split .Image \":\"}}{{$k}}={{$v}} {{end}}"}),
      "0=nginx 1=1.25 \n0=postgres 1=16 \n");
  EXPECT_EQ(*RenderListing(l, {.format = "{{json .}}"}),
            "{\"ID\":\"x1\",\"Image\":\"nginx:1.25\",\"Name\":\"web\"}\n"
            "{\"ID\":\"x2\",\"Image\":\"postgres:16\",\"Name\":\"db\"}\n");
  EXPECT_EQ(*RenderListing(l, {.format = "table {{.ID}}\\t{{.Name}}: {{.Image}}"}),
            "ID        NAME: IMAGE\n"
            "x1        web: nginx:1.25\n"
            "x2        db: postgres:16\n");
  EXPECT_EQ(*RenderListing(l, {.format = "table {{.Name}}\\t{{printf \"%.3s\" .Image}}"}),
            "NAME      IMA\n"
            "web       ngi\n"
            "db        pos\n");
}

TEST(InspectTemplate, DockerShapedFields) {
  api::Service svc;
  svc.set_id("svc1");
  svc.mutable_meta()->mutable_version()->set_index(42);
  svc.mutable_spec()->mutable_annotations()->set_name("web");
  (*svc.mutable_spec()->mutable_annotations()->mutable_labels())["tier"] = "front";
  (*svc.mutable_spec()->mutable_annotations()->mutable_labels())["app"] = "shop";
  svc.mutable_spec()->mutable_replicated()->set_replicas(3);
  svc.mutable_spec()->mutable_task_template()->mutable_container()->set_image("nginx");
  svc.mutable_spec()->mutable_task_template()->mutable_container()->add_env("A=1");
  svc.mutable_spec()->mutable_task_template()->mutable_container()->add_env("B=2");
  api::Service other = svc;
  other.set_id("svc2");
  other.mutable_spec()->mutable_annotations()->set_name("db");
  std::vector<const google::protobuf::Message*> objects = {&svc, &other};
  EXPECT_EQ(*InspectTemplate(objects, "{{.ID}} {{.Spec.Name}} {{.Version.Index}}"),
            "svc1 web 42\nsvc2 db 42\n");
  EXPECT_EQ(*InspectTemplate(objects, "{{range .Spec.TaskTemplate.Container.Env}}{{.}};{{end}}"),
            "A=1;B=2;\nA=1;B=2;\n");
  EXPECT_EQ(*InspectTemplate({&svc}, "{{json .Spec.Labels}} {{index .Spec.Labels \"app\"}}"),
            "{\"app\":\"shop\",\"tier\":\"front\"} shop\n");
  EXPECT_EQ(*InspectTemplate({&svc}, "{{.Spec.Replicated.Replicas}} {{.Spec.Global}}"),
            "3 <nil>\n");
  auto bad = InspectTemplate({&svc}, "{{.Spec.Nme}}");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "invalid --format: template: :1:2: executing \"\" at <.Spec.Nme>: can't evaluate "
            "field Nme in type ServiceSpec");
}

TEST(NodeListing, SelfMarkAndManagerStatus) {
  api::Node leader, worker, reachable;
  leader.set_id("node1id000000000000000000");
  leader.mutable_description()->set_hostname("node1");
  leader.mutable_description()->mutable_engine()->set_engine_version("0.1.0");
  leader.mutable_status()->set_state(api::NODE_STATE_READY);
  leader.mutable_manager_status()->set_leader(true);
  worker.set_id("node10id00000000000000000");
  worker.mutable_description()->set_hostname("node10");
  worker.mutable_status()->set_state(api::NODE_STATE_DOWN);
  worker.mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  reachable.set_id("node2id000000000000000000");
  reachable.mutable_description()->set_hostname("node2");
  reachable.mutable_status()->set_state(api::NODE_STATE_READY);
  reachable.mutable_manager_status()->set_reachability(api::REACHABILITY_REACHABLE);
  Listing l = NodeListing({worker, reachable, leader}, "node1id000000000000000000", false);
  EXPECT_EQ(
      *RenderListing(l, {}),
      "ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   "
      "ENGINE VERSION\n"
      "node1id000000000000000000 *   node1      Ready     Active         Leader           "
      "0.1.0\n"
      "node2id000000000000000000     node2      Ready     Active         Reachable        \n"
      "node10id00000000000000000     node10     Down      Drain                           \n");
}

TEST(TaskListing, HistoryStatesErrorsPorts) {
  api::Task running, old, global;
  running.set_id("task1aaaaaaaaaaaaaaaaaaaa");
  running.set_service_id("svc1");
  running.set_slot(1);
  running.set_node_id("n1");
  running.mutable_spec()->mutable_container()->set_image("nginx:1.25@sha256:x");
  running.set_desired_state(api::TASK_STATE_RUNNING);
  running.mutable_status()->set_state(api::TASK_STATE_RUNNING);
  SetTime(kNow - absl::Seconds(5), running.mutable_status()->mutable_timestamp());
  SetTime(kNow - absl::Seconds(6), running.mutable_meta()->mutable_created_at());
  auto* port = running.mutable_status()->mutable_port_status()->add_ports();
  port->set_published_port(30000);
  port->set_target_port(80);

  old = running;
  old.set_id("task0aaaaaaaaaaaaaaaaaaaa");
  old.set_desired_state(api::TASK_STATE_SHUTDOWN);
  old.mutable_status()->set_state(api::TASK_STATE_FAILED);
  old.mutable_status()->set_err("task: non-zero exit (137): container killed by the OOM killer");
  old.mutable_status()->clear_port_status();
  SetTime(kNow - absl::Minutes(1) - absl::Seconds(10), old.mutable_status()->mutable_timestamp());
  SetTime(kNow - absl::Hours(1), old.mutable_meta()->mutable_created_at());

  global.set_id("task2aaaaaaaaaaaaaaaaaaaa");
  global.set_service_id("svc2");
  global.set_node_id("n2");
  global.mutable_service_annotations()->set_name("agent");
  global.set_desired_state(api::TASK_STATE_RUNNING);
  global.mutable_status()->set_state(api::TASK_STATE_PENDING);
  SetTime(kNow - absl::Hours(3), global.mutable_status()->mutable_timestamp());

  Listing l =
      TaskListing({old, global, running}, {{"svc1", "web"}}, {{"n1", "node1"}}, kNow, false);
  EXPECT_EQ(*RenderListing(l, {}),
            "ID             NAME        IMAGE        NODE      DESIRED STATE   CURRENT STATE      "
            "         ERROR                              PORTS\n"
            "task2aaaaaaa   agent.n2                 n2        Running         Pending 3 hours ago"
            "                                            \n"
            "task1aaaaaaa   web.1       nginx:1.25   node1     Running         Running 5 seconds "
            "ago                                          *:30000->80/tcp\n"
            "task0aaaaaaa    \\_ web.1   nginx:1.25   node1     Shutdown        Failed about a "
            "minute ago   \"task: non-zero exit (137): co\xe2\x80\xa6\"   \n");

  Listing full = TaskListing({old}, {{"svc1", "web"}}, {}, kNow, true);
  EXPECT_EQ(full.rows[0][0], "task0aaaaaaaaaaaaaaaaaaaa");
  EXPECT_EQ(full.rows[0][3], "n1");
  EXPECT_EQ(full.rows[0][6], "\"task: non-zero exit (137): container killed by the OOM killer\"");
}

TEST(Listings, NetworksSecretsConfigs) {
  api::Network net;
  net.set_id("netidnetidnetidnetidnetid");
  net.mutable_spec()->mutable_annotations()->set_name("ingress");
  Listing l = NetworkListing({net}, false);
  EXPECT_EQ(*RenderListing(l, {}),
            "NETWORK ID     NAME      DRIVER    SCOPE\n"
            "netidnetidne   ingress   overlay   swarm\n");

  api::Secret secret;
  secret.set_id("secretidsecretidsecretid1");
  secret.mutable_spec()->mutable_annotations()->set_name("db_password");
  SetTime(kNow - absl::Seconds(75), secret.mutable_meta()->mutable_created_at());
  SetTime(kNow - absl::Seconds(11), secret.mutable_meta()->mutable_updated_at());
  EXPECT_EQ(*RenderListing(SecretListing({secret}, kNow, false), {}),
            "ID                          NAME          DRIVER    CREATED              UPDATED\n"
            "secretidsecretidsecretid1   db_password             About a minute ago   11 seconds "
            "ago\n");

  api::Config config;
  config.set_id("configidconfigidconfigid1");
  config.mutable_spec()->mutable_annotations()->set_name("nginx.conf");
  SetTime(kNow - absl::Hours(49), config.mutable_meta()->mutable_created_at());
  SetTime(kNow - absl::Hours(49), config.mutable_meta()->mutable_updated_at());
  EXPECT_EQ(*RenderListing(ConfigListing({config}, kNow, false), {}),
            "ID                          NAME         CREATED      UPDATED\n"
            "configidconfigidconfigid1   nginx.conf   2 days ago   2 days ago\n");
}

TEST(InspectJson, ArrayWithFourSpaces) {
  api::Network net;
  net.set_id("n1");
  net.mutable_spec()->mutable_annotations()->set_name("backend");
  auto json = InspectJson({&net});
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(*json,
            "[\n"
            "    {\n"
            "        \"id\": \"n1\",\n"
            "        \"spec\": {\n"
            "            \"annotations\": {\n"
            "                \"name\": \"backend\"\n"
            "            }\n"
            "        }\n"
            "    }\n"
            "]\n");
  EXPECT_EQ(*InspectJson({}), "[]\n");
}

}  // namespace
}  // namespace swarm::cli
