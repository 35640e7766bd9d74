#include "tools/registry_commands.hpp"

#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include "layerstore/error.hpp"
#include "layerstore/sources/pull.hpp"
#include "layerstore/sources/push.hpp"
#include "layerstore/store/store_layout.hpp"
#include "tools/command_runner.hpp"

namespace strata::cli {
namespace {

struct RegistryArgs {
  std::string tls_verify = "true";
  std::string cert_dir, creds, authfile;
  bool quiet = false;
};

void add_registry_options(CLI::App* c, RegistryArgs& a) {
  c->add_option("--tls-verify", a.tls_verify, "check the registry's TLS certificate (default true; false also allows plain HTTP)");
  c->add_option("--cert-dir", a.cert_dir, "trust the CA certificates DIR/*.crt (default /etc/containers/certs.d/HOST)");
  c->add_option("--creds", a.creds, "USER:PASSWORD for the registry");
  c->add_option("--authfile", a.authfile, "auth file (default $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, ~/.docker/config.json)");
}

RegistryOptions registry_options(const RegistryArgs& a) {
  RegistryOptions o;
  if (a.tls_verify != "true" && a.tls_verify != "false") throw Error("--tls-verify wants true or false");
  o.tls_verify = a.tls_verify == "true";
  o.cert_dir = a.cert_dir;
  o.authfile = a.authfile;
  if (!a.creds.empty()) o.creds = parse_creds(a.creds, "--creds");
  return o;
}

// Runs a command: prints its one-line error and ends the parse with its exit code.
template <typename F>
void run_command(const std::string& what, F&& f) {
  int rc;
  try {
    rc = f();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "strata: %s: %s\n", what.c_str(), e.what());
    throw CLI::RuntimeError(1);
  }
  if (rc == 0) throw CLI::Success();
  throw CLI::RuntimeError(rc);
}

std::string read_password_stdin() {
  std::string pw;
  bool tty = isatty(STDIN_FILENO);
  termios old{};
  if (tty) {
    std::fprintf(stderr, "Password: ");
    tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~ECHO;
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::getline(std::cin, pw);
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fprintf(stderr, "\n");
  }
  return pw;
}

}  // namespace

void add_registry_commands(CLI::App& app, const std::string& root) {
  struct PullArgs : RegistryArgs {
    std::string platform = "linux/amd64", ref, max_expansion;
    bool lazy = false;
  };
  auto pull = std::make_shared<PullArgs>();
  auto* c_pull = app.add_subcommand("pull", "pull an image from a registry ([registry/]name[:tag|@digest])");
  add_registry_options(c_pull, *pull);
  c_pull->add_option("--platform", pull->platform, "platform to pick from an index (default linux/amd64)");
  c_pull->add_option("--max-expansion", pull->max_expansion,
                     "a layer may decompress to N x its compressed size + 64 MiB (default 100; 0: no ratio cap)");
  c_pull->add_flag("-q,--quiet", pull->quiet, "no progress output");
  c_pull->add_flag("--lazy", pull->lazy, "keep new layers as their blob + an index instead of unpacking");
  c_pull->add_option("reference", pull->ref, "REF")->required();
  c_pull->callback([pull, &root] {
    run_command("pull " + pull->ref, [&] {
      PullOptions o;
      o.ref = pull->ref;
      o.platform = parse_platform(pull->platform);
      if (!pull->max_expansion.empty()) o.max_expansion = parse_max_expansion(pull->max_expansion);
      o.lazy = pull->lazy;
      o.registry = registry_options(*pull);
      Progress progress(Progress::detect(pull->quiet));
      PullSummary s = pull_image(store_layout(root), o, progress);
      const LoadSummary& l = s.load;
      if (!pull->quiet) {
        std::fprintf(stderr, "Digest: %s\n", s.manifest_digest.c_str());
        std::string local = l.layers_local ? ", " + std::to_string(l.layers_local) + " rebuilt from local layers" : "";
        std::string kept = l.layers_lazy ? ", " + std::to_string(l.layers_lazy) + " kept lazy" : "";
        std::fprintf(stderr, "%d layer(s) downloaded (%s, %s unpacked%s)%s, %d already present, in %.2fs\n", l.layers_new,
                     human_bytes(l.bytes_read).c_str(), human_bytes(l.bytes_unpacked).c_str(), kept.c_str(), local.c_str(),
                     l.layers_reused, l.seconds);
      }
      std::printf("%s\n", s.local_ref.c_str());
      return 0;
    });
  });

  struct PushArgs : RegistryArgs {
    std::string image, ref;
  };
  auto push = std::make_shared<PushArgs>();
  auto* c_push = app.add_subcommand("push", "push an image to a registry");
  add_registry_options(c_push, *push);
  c_push->add_flag("-q,--quiet", push->quiet, "no progress output");
  c_push->add_option("image", push->image, "IMAGE")->required();
  c_push->add_option("reference", push->ref, "REF ([registry/]name[:tag]; default: IMAGE)");
  c_push->callback([push, &root] {
    run_command("push " + (push->ref.empty() ? push->image : push->ref), [&] {
      PushOptions o;
      o.image = push->image;
      o.ref = push->ref.empty() ? push->image : push->ref;
      o.registry = registry_options(*push);
      Progress progress(Progress::detect(push->quiet));
      PushSummary s = push_image(store_layout(root), o, progress);
      if (!push->quiet)
        std::fprintf(stderr, "%d layer(s) uploaded (%s), %d already there, %d mounted, in %.2fs\n", s.uploaded,
                     human_bytes(s.bytes_uploaded).c_str(), s.existing, s.mounted, s.seconds);
      std::printf("%s: digest: %s size: %zu\n", s.remote_ref.c_str(), s.manifest_digest.c_str(), s.manifest_size);
      return 0;
    });
  });

  struct LoginArgs : RegistryArgs {
    std::string registry, user, password;
    bool password_stdin = false;
  };
  auto login = std::make_shared<LoginArgs>();
  auto* c_login = app.add_subcommand("login", "check credentials with a registry and store them in the auth file");
  add_registry_options(c_login, *login);
  c_login->add_option("-u,--username", login->user, "user name")->required();
  c_login->add_option("-p,--password", login->password, "password");
  c_login->add_flag("--password-stdin", login->password_stdin, "read the password from stdin");
  c_login->add_option("registry", login->registry, "REGISTRY (host[:port])")->required();
  c_login->callback([login] {
    run_command("login " + login->registry, [&] {
      RegistryOptions o = registry_options(*login);
      std::string pw = login->password;
      if (login->password_stdin || pw.empty()) pw = read_password_stdin();
      o.creds = Credentials{login->user, pw};
      RegistryClient client(login->registry, o);
      client.ping();
      std::string file = login->authfile.empty() ? default_auth_file() : login->authfile;
      store_credentials(file, login->registry, *o.creds);
      std::printf("Login Succeeded (%s)\n", file.c_str());
      return 0;
    });
  });

  struct LogoutArgs : RegistryArgs {
    std::string registry;
  };
  auto logout = std::make_shared<LogoutArgs>();
  auto* c_logout = app.add_subcommand("logout", "remove a registry's credentials from the auth file");
  c_logout->add_option("--authfile", logout->authfile, "auth file (default as for login)");
  c_logout->add_option("registry", logout->registry, "REGISTRY (host[:port])")->required();
  c_logout->callback([logout] {
    run_command("logout " + logout->registry, [&] {
      std::string file = logout->authfile.empty() ? default_auth_file() : logout->authfile;
      if (!remove_credentials(file, logout->registry)) throw Error("not logged in (no entry in " + file + ")");
      std::printf("Removed login credentials for %s\n", logout->registry.c_str());
      return 0;
    });
  });
}

}  // namespace strata::cli
