#include "layerstore/container/config_change.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>

#include "layerstore/error.hpp"

namespace strata {

using nlohmann::json;

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) b++;
  while (e > b && is_space(s[e - 1])) e--;
  return s.substr(b, e - b);
}

std::string env_value(const json& env, const std::string& name, bool& found) {
  found = false;
  if (!env.is_array()) return "";
  for (const auto& e : env) {
    std::string kv = e.is_string() ? e.get<std::string>() : "";
    if (kv.compare(0, name.size() + 1, name + "=") == 0) {
      found = true;
      return kv.substr(name.size() + 1);
    }
  }
  return "";
}

// One word as Docker's shell lexer reads it in ENV, LABEL, USER, WORKDIR, EXPOSE, VOLUME:
// quotes removed, backslash escapes, $NAME, ${NAME}, ${NAME:-word} and ${NAME:+word} from
// the config's Env (an unset name is empty).
std::string process_word(const std::string& w, const json& env) {
  std::string out;
  auto name_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  auto expand = [&](size_t& i) {  // w[i] == '$'
    if (i + 1 < w.size() && w[i + 1] == '{') {
      size_t close = w.find('}', i + 2);
      if (close == std::string::npos) throw Error("missing '}' in \"" + w + "\"");
      std::string inner = w.substr(i + 2, close - i - 2);
      i = close + 1;
      size_t op = inner.find(':');
      std::string name = inner.substr(0, op);
      bool found;
      std::string v = env_value(env, name, found);
      if (op == std::string::npos) return v;
      std::string word = inner.substr(op + 2);
      if (op + 1 < inner.size() && inner[op + 1] == '-') return found && !v.empty() ? v : process_word(word, env);
      if (op + 1 < inner.size() && inner[op + 1] == '+') return found && !v.empty() ? process_word(word, env) : "";
      throw Error("unsupported modifier in \"${" + inner + "}\"");
    }
    size_t j = i + 1;
    while (j < w.size() && name_char(w[j])) j++;
    if (j == i + 1) {  // a lone '$' is itself
      i++;
      return std::string("$");
    }
    bool found;
    std::string v = env_value(env, w.substr(i + 1, j - i - 1), found);
    i = j;
    return v;
  };
  for (size_t i = 0; i < w.size();) {
    char c = w[i];
    if (c == '\\' && i + 1 < w.size()) {
      out += w[i + 1];
      i += 2;
    } else if (c == '\'') {
      size_t close = w.find('\'', i + 1);
      if (close == std::string::npos) throw Error("unexpected end of input in quoted string: " + w);
      out += w.substr(i + 1, close - i - 1);
      i = close + 1;
    } else if (c == '"') {
      for (i++;; ) {
        if (i >= w.size()) throw Error("unexpected end of input in quoted string: " + w);
        if (w[i] == '"') {
          i++;
          break;
        }
        if (w[i] == '\\' && i + 1 < w.size() && (w[i + 1] == '"' || w[i + 1] == '\\' || w[i + 1] == '$')) {
          out += w[i + 1];
          i += 2;
        } else if (w[i] == '$') {
          out += expand(i);
        } else {
          out += w[i++];
        }
      }
    } else if (c == '$') {
      out += expand(i);
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

// Words separated by blanks outside quotes, quotes and escapes kept (process_word removes them).
std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (!quote && is_space(c)) {
      if (in_word) words.push_back(cur);
      cur.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    cur += c;
    if (c == '\\' && quote != '\'' && i + 1 < s.size()) {
      cur += s[++i];
    } else if (quote && c == quote) {
      quote = 0;
    } else if (!quote && (c == '"' || c == '\'')) {
      quote = c;
    }
  }
  if (in_word) words.push_back(cur);
  return words;
}

// The JSON form (["a","b"]) when `rest` is a JSON array of strings, else nothing: Docker then
// takes the text as the shell form, even if it starts with '['.
std::optional<std::vector<std::string>> json_form(const std::string& rest) {
  if (rest.empty() || rest[0] != '[') return std::nullopt;
  json j = json::parse(rest, nullptr, false);
  if (j.is_discarded() || !j.is_array()) return std::nullopt;
  std::vector<std::string> v;
  for (const auto& x : j) {
    if (!x.is_string()) return std::nullopt;
    v.push_back(x.get<std::string>());
  }
  return v;
}

std::vector<std::string> command_line(const std::string& rest) {
  if (auto v = json_form(rest)) return *v;
  return {"/bin/sh", "-c", rest};
}

// KEY=VALUE pairs (quoted as in a Dockerfile), or the old single "KEY VALUE..." form.
std::vector<std::pair<std::string, std::string>> name_values(const std::string& keyword, const std::string& rest,
                                                             const json& env) {
  std::vector<std::string> words = split_words(rest);
  if (words.empty()) throw Error(keyword + " requires at least one argument");
  std::vector<std::pair<std::string, std::string>> out;
  if (words[0].find('=') == std::string::npos) {
    if (words.size() < 2) throw Error(keyword + " must have two arguments");
    size_t value_at = rest.find_first_of(" \t", 0);
    std::string value = trim(rest.substr(value_at));
    out.emplace_back(process_word(words[0], env), process_word(value, env));
    return out;
  }
  for (const auto& w : words) {
    size_t eq = w.find('=');
    if (eq == std::string::npos)
      throw Error("syntax error - can't find = in \"" + w + "\"; must be of the form: name=value");
    std::string name = process_word(w.substr(0, eq), env);
    if (name.empty()) throw Error(keyword + " names can not be blank");
    out.emplace_back(name, process_word(w.substr(eq + 1), env));
  }
  return out;
}

std::string join_clean(const std::string& base, const std::string& rel) {
  std::vector<std::string> parts;
  std::string all = base + "/" + rel;
  for (size_t i = 0; i <= all.size();) {
    size_t j = all.find('/', i);
    if (j == std::string::npos) j = all.size();
    std::string p = all.substr(i, j - i);
    if (p == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!p.empty() && p != ".") {
      parts.push_back(p);
    }
    i = j + 1;
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

uint32_t port_number(const std::string& s, const std::string& spec) {
  if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos || std::stoul(s) > 65535)
    throw Error("invalid port \"" + spec + "\"");
  return static_cast<uint32_t>(std::stoul(s));
}

// "80", "80/udp", "8000-8002/tcp" -> "80/tcp", ... as Docker's nat.ParsePortSpecs.
std::vector<std::string> exposed_ports(const std::string& spec) {
  std::string ports = spec, proto = "tcp";
  if (size_t slash = spec.find('/'); slash != std::string::npos) {
    ports = spec.substr(0, slash);
    proto = spec.substr(slash + 1);
    for (auto& c : proto) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (proto != "tcp" && proto != "udp" && proto != "sctp") throw Error("invalid proto \"" + proto + "\"");
  }
  size_t dash = ports.find('-');
  uint32_t lo = port_number(ports.substr(0, dash), spec);
  uint32_t hi = dash == std::string::npos ? lo : port_number(ports.substr(dash + 1), spec);
  if (hi < lo) throw Error("invalid port range \"" + spec + "\"");
  std::vector<std::string> out;
  for (uint32_t p = lo; p <= hi; p++) out.push_back(std::to_string(p) + "/" + proto);
  return out;
}

// A Go duration ("30s", "1m30s", "500ms") in nanoseconds, as HEALTHCHECK's flags take it.
int64_t go_duration(const std::string& flag, const std::string& v) {
  static const std::vector<std::pair<std::string, double>> units = {
      {"ns", 1}, {"us", 1e3}, {"µs", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
  double total = 0;
  size_t i = 0;
  if (v == "0") return 0;
  while (i < v.size()) {
    size_t j = i;
    while (j < v.size() && (std::isdigit(static_cast<unsigned char>(v[j])) || v[j] == '.')) j++;
    if (j == i) throw Error("invalid duration \"" + v + "\" for --" + flag);
    double n = std::stod(v.substr(i, j - i));
    size_t k = j;
    while (k < v.size() && !std::isdigit(static_cast<unsigned char>(v[k])) && v[k] != '.') k++;
    std::string unit = v.substr(j, k - j);
    auto u = std::find_if(units.begin(), units.end(), [&](const auto& x) { return x.first == unit; });
    if (u == units.end()) throw Error("invalid duration \"" + v + "\" for --" + flag);
    total += n * u->second;
    i = k;
  }
  if (total != 0 && total < 1e6) throw Error("--" + flag + " cannot be less than 1ms");
  return static_cast<int64_t>(total);
}

// HEALTHCHECK NONE | HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D] [--retries=N] CMD ...
json healthcheck(const std::string& rest) {
  std::string r = rest;
  json hc = json::object();
  while (r.rfind("--", 0) == 0) {
    size_t sp = r.find_first_of(" \t");
    std::string flag = r.substr(2, sp == std::string::npos ? std::string::npos : sp - 2);
    r = sp == std::string::npos ? "" : trim(r.substr(sp));
    size_t eq = flag.find('=');
    if (eq == std::string::npos) throw Error("HEALTHCHECK flag --" + flag + " needs a value (--" + flag + "=...)");
    std::string name = flag.substr(0, eq), value = flag.substr(eq + 1);
    if (name == "interval") hc["Interval"] = go_duration(name, value);
    else if (name == "timeout") hc["Timeout"] = go_duration(name, value);
    else if (name == "start-period") hc["StartPeriod"] = go_duration(name, value);
    else if (name == "retries") {
      if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos)
        throw Error("--retries must be a number >= 0");
      hc["Retries"] = std::stoi(value);
    } else {
      throw Error("unknown flag: --" + name);
    }
  }
  size_t sp = r.find_first_of(" \t");
  std::string type = r.substr(0, sp);
  for (auto& c : type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string args = sp == std::string::npos ? "" : trim(r.substr(sp));
  if (type == "NONE") {
    if (!args.empty()) throw Error("HEALTHCHECK NONE takes no arguments");
    return json{{"Test", {"NONE"}}};
  }
  if (type != "CMD") throw Error("unknown type \"" + type + "\" in HEALTHCHECK (try CMD)");
  if (args.empty()) throw Error("missing command after HEALTHCHECK CMD");
  json test = json::array();
  if (auto v = json_form(args)) {
    test.push_back("CMD");
    for (const auto& a : *v) test.push_back(a);
  } else {
    test = {"CMD-SHELL", args};
  }
  hc["Test"] = test;
  for (const char* k : {"Interval", "Timeout", "StartPeriod", "Retries"})
    if (hc.contains(k) && hc[k] == 0) hc.erase(k);
  return hc;
}

struct State {
  json& cfg;
  bool cmd_set = false;
};

void apply_one(State& st, const std::string& change) {
  json& cfg = st.cfg;
  std::string text = trim(change);
  size_t sp = text.find_first_of(" \t");
  std::string word = text.substr(0, sp);
  std::string rest = sp == std::string::npos ? "" : trim(text.substr(sp));
  std::string kw;
  for (char c : word) kw += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const json env = cfg.contains("Env") ? cfg["Env"] : json(nullptr);
  static const std::vector<std::string> known = {"CMD",     "ENTRYPOINT", "ENV",  "EXPOSE", "HEALTHCHECK",
                                                 "LABEL",   "ONBUILD",    "USER", "VOLUME", "WORKDIR"};
  if (std::find(known.begin(), known.end(), kw) == known.end()) {
    std::string lower;
    for (char c : word) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    throw Error((lower.empty() ? "\"\"" : lower) +
                " is not a valid change command (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, USER, VOLUME, "
                "WORKDIR)");
  }
  if (rest.empty()) throw Error(kw + " requires at least one argument");
  if (kw == "CMD") {
    cfg["Cmd"] = command_line(rest);
    st.cmd_set = true;
  } else if (kw == "ENTRYPOINT") {
    cfg["Entrypoint"] = command_line(rest);
    // As a Dockerfile: a new entrypoint drops the Cmd unless this change set gave one.
    if (!st.cmd_set) cfg["Cmd"] = nullptr;
  } else if (kw == "ENV") {
    if (!cfg["Env"].is_array()) cfg["Env"] = json::array();
    for (const auto& [k, v] : name_values(kw, rest, env)) {
      json& e = cfg["Env"];
      bool replaced = false;
      for (auto& x : e)
        if (x.is_string() && x.get<std::string>().compare(0, k.size() + 1, k + "=") == 0) {
          x = k + "=" + v;
          replaced = true;
        }
      if (!replaced) e.push_back(k + "=" + v);
    }
  } else if (kw == "LABEL") {
    if (!cfg["Labels"].is_object()) cfg["Labels"] = json::object();
    for (const auto& [k, v] : name_values(kw, rest, env)) cfg["Labels"][k] = v;
  } else if (kw == "EXPOSE") {
    if (!cfg["ExposedPorts"].is_object()) cfg["ExposedPorts"] = json::object();
    for (const auto& w : split_words(rest))
      for (const auto& p : exposed_ports(process_word(w, env))) cfg["ExposedPorts"][p] = json::object();
  } else if (kw == "VOLUME") {
    std::vector<std::string> vols;
    if (auto v = json_form(rest)) vols = *v;
    else
      for (const auto& w : split_words(rest)) vols.push_back(process_word(w, env));
    if (!cfg["Volumes"].is_object()) cfg["Volumes"] = json::object();
    for (const auto& v : vols) {
      if (trim(v).empty()) throw Error("VOLUME specified can not be an empty string");
      cfg["Volumes"][v] = json::object();
    }
  } else if (kw == "HEALTHCHECK") {
    cfg["Healthcheck"] = healthcheck(rest);
  } else if (kw == "USER") {
    cfg["User"] = process_word(rest, env);
  } else if (kw == "WORKDIR") {
    std::string dir = process_word(rest, env);
    if (dir.empty() || dir[0] != '/') dir = join_clean(cfg.value("WorkingDir", std::string()), dir);
    cfg["WorkingDir"] = dir;
  } else if (kw == "ONBUILD") {
    std::string trigger = rest.substr(0, rest.find_first_of(" \t"));
    for (auto& c : trigger) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (trigger == "ONBUILD" || trigger == "FROM" || trigger == "MAINTAINER")
      throw Error(trigger + " isn't allowed as an ONBUILD trigger");
    if (!cfg["OnBuild"].is_array()) cfg["OnBuild"] = json::array();
    cfg["OnBuild"].push_back(rest);
  }
}

}  // namespace

void apply_config_changes(json& config, const std::vector<std::string>& changes) {
  json cfg = config.is_object() ? config : json::object();
  State st{cfg};
  for (const auto& c : changes) {
    try {
      apply_one(st, c);
    } catch (const Error& e) {
      throw Error("--change \"" + c + "\": " + e.what());
    }
  }
  config = std::move(cfg);
}

}  // namespace strata
