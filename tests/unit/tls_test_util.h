// tls_test_util.h: test certificates made with the openssl command line: two CAs, a server certificate for
// localhost / 127.0.0.1 (and a service name) and a client certificate, each signed by the first CA.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace rlj::testing {

struct TestCertificates {
  std::string ca;           // the CA that signed everything below
  std::string other_ca;     // an unrelated CA
  std::string server_cert;  // SAN: DNS localhost, DNS rlj.internal, IP 127.0.0.1
  std::string server_key;
  std::string client_cert;  // CN rlj-client, signed by `ca`
  std::string client_key;
  std::string rogue_client_cert;  // signed by `other_ca`
  std::string rogue_client_key;
};

// Runs a shell command line of the test's own making (fixed strings and a scratch directory).
inline bool RunShell(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()) == 0; }

// Writes the certificates into `dir` (created if missing; EC P-256 keys, valid for two days). Fails the test if openssl
// fails.
inline TestCertificates MakeTestCertificates(const std::string& dir) {
  TestCertificates c;
  std::filesystem::create_directories(dir);
  const std::string d = "'" + dir + "'";
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const auto make_ca = [&](const std::string& name, const std::string& subject) {
    return RunShell("openssl req -x509" + ec + " -keyout " + d + "/" + name + ".key -out " + d + "/" + name +
                    ".pem -days 2 -subj '/CN=" + subject + "' -addext basicConstraints=critical,CA:TRUE" +
                    " -addext keyUsage=critical,keyCertSign,cRLSign");
  };
  const auto make_leaf = [&](const std::string& name, const std::string& subject, const std::string& ca,
                             const std::string& extensions) {
    std::ofstream(dir + "/" + name + ".ext") << extensions << "\n";
    return RunShell("openssl req" + ec + " -keyout " + d + "/" + name + ".key -out " + d + "/" + name +
                    ".csr -subj '/CN=" + subject + "'") &&
           RunShell("openssl x509 -req -in " + d + "/" + name + ".csr -CA " + d + "/" + ca + ".pem -CAkey " + d + "/" +
                    ca + ".key -CAcreateserial -out " + d + "/" + name + ".pem -days 2 -extfile " + d + "/" + name +
                    ".ext");
  };
  EXPECT_TRUE(make_ca("ca", "rlj test CA")) << "openssl could not make the CA";
  EXPECT_TRUE(make_ca("other-ca", "unrelated CA"));
  EXPECT_TRUE(make_leaf("server", "localhost", "ca",
                        "subjectAltName=DNS:localhost,DNS:rlj.internal,IP:127.0.0.1\nextendedKeyUsage=serverAuth"));
  EXPECT_TRUE(make_leaf("client", "rlj-client", "ca", "extendedKeyUsage=clientAuth"));
  EXPECT_TRUE(make_leaf("rogue", "rlj-client", "other-ca", "extendedKeyUsage=clientAuth"));
  c.ca = dir + "/ca.pem";
  c.other_ca = dir + "/other-ca.pem";
  c.server_cert = dir + "/server.pem";
  c.server_key = dir + "/server.key";
  c.client_cert = dir + "/client.pem";
  c.client_key = dir + "/client.key";
  c.rogue_client_cert = dir + "/rogue.pem";
  c.rogue_client_key = dir + "/rogue.key";
  return c;
}

}  // namespace rlj::testing
