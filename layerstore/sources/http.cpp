// libcurl easy handles, one per request, sharing connections, DNS and TLS sessions through
// one CURLSH so the parallel layer downloads of a pull reuse their connections.
#include "layerstore/sources/http.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <exception>
#include <mutex>

#include "layerstore/sources/curl_api.hpp"

namespace strata {
namespace {

struct Share {
  CURLSH* sh;
  std::mutex locks[CURL_LOCK_DATA_LAST];
  Share() {
    curl_api().global_init(CURL_GLOBAL_DEFAULT);
    sh = curl_api().share_init();
    curl_api().share_setopt(sh, CURLSHOPT_LOCKFUNC, +[](CURL*, curl_lock_data d, curl_lock_access, void* p) {
      static_cast<Share*>(p)->locks[d].lock();
    });
    curl_api().share_setopt(sh, CURLSHOPT_UNLOCKFUNC, +[](CURL*, curl_lock_data d, void* p) {
      static_cast<Share*>(p)->locks[d].unlock();
    });
    curl_api().share_setopt(sh, CURLSHOPT_USERDATA, this);
    curl_api().share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_api().share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_api().share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  }
};

Share& share() {
  static Share s;
  return s;
}

struct Transfer {
  const HttpRequest& req;
  HttpResponse& resp;
  CURL* curl;
  std::exception_ptr error;  // from the sink or reader: never thrown through C frames
  size_t upload_pos = 0;
  uint64_t skipped = 0;
};

size_t on_header(char* p, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  std::string line(p, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    t->resp.headers.clear();  // a 100 Continue or a proxy's response came first
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon == std::string::npos) return size * n;
  std::string name = line.substr(0, colon);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.pop_back();
  t->resp.headers[name] = value;
  return size * n;
}

size_t on_body(char* p, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  size_t len = size * n;
  long status = 0;
  curl_api().easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  try {
    if (status >= 200 && status < 300 && t->req.sink) {
      if (status == 200 && t->skipped < t->req.skip_if_full) {
        size_t k = std::min<uint64_t>(len, t->req.skip_if_full - t->skipped);
        t->skipped += k;
        p += k;
        len -= k;
        if (!len) return size * n;
      }
      t->req.sink(reinterpret_cast<const uint8_t*>(p), len);
      t->resp.sink_bytes += len;
      return size * n;
    } else {
      if (t->resp.body.size() + len > t->req.max_body)
        throw BodyTooLarge("answer larger than " + std::to_string(t->req.max_body) + " bytes");
      t->resp.body.append(p, len);
    }
  } catch (...) {
    t->error = std::current_exception();
    return CURL_WRITEFUNC_ERROR;
  }
  return len;
}

size_t on_read(char* buf, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  try {
    if (t->req.reader) return t->req.reader(buf, size * n);
    size_t k = std::min(size * n, t->req.body.size() - t->upload_pos);
    std::copy_n(t->req.body.data() + t->upload_pos, k, buf);
    t->upload_pos += k;
    return k;
  } catch (...) {
    t->error = std::current_exception();
    return CURL_READFUNC_ABORT;
  }
}

// Runs once the connection is up (or reused) and before the request is sent.
int on_connected(void* ud, char* peer_ip, char*, int, int) {
  auto* t = static_cast<Transfer*>(ud);
  if (!t->req.loopback_peer_only || is_loopback_address(peer_ip)) return CURL_PREREQFUNC_OK;
  t->error = std::make_exception_ptr(Error(t->req.url + ": connected to " + std::string(peer_ip) +
                                           ", not a loopback address; plain HTTP without --tls-verify=false "
                                           "is only used with loopback registries, nothing was sent"));
  return CURL_PREREQFUNC_ABORT;
}

std::string primary_ip(CURL* c) {
  char* ip = nullptr;
  return curl_api().easy_getinfo(c, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip ? ip : "";
}

}  // namespace

bool TransportError::certificate_problem() const {
  return curl_code == CURLE_PEER_FAILED_VERIFICATION || curl_code == CURLE_SSL_CACERT_BADFILE ||
         curl_code == CURLE_SSL_ISSUER_ERROR || curl_code == CURLE_SSL_PINNEDPUBKEYNOTMATCH;
}

bool TransportError::tls_handshake_problem() const { return curl_code == CURLE_SSL_CONNECT_ERROR; }

HttpResponse http_perform(const HttpRequest& req) {
  HttpResponse resp;
  CURL* c = curl_api().easy_init();
  if (!c) throw Error("cannot start an HTTP client (curl_api().easy_init)");
  std::unique_ptr<CURL, void (*)(CURL*)> guard(c, curl_api().easy_cleanup);
  Transfer t{req, resp, c, nullptr};
  curl_slist* hdrs = nullptr;
  for (const auto& h : req.headers) hdrs = curl_api().slist_append(hdrs, h.c_str());
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> hguard(hdrs, curl_api().slist_free_all);
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_api().easy_setopt(c, CURLOPT_SHARE, share().sh);
  curl_api().easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_api().easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  curl_api().easy_setopt(c, CURLOPT_USERAGENT, "strata/0.1");
  curl_api().easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_api().easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_api().easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_api().easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_api().easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  // A stalled transfer (no byte for 60 s) is a transport error, so it can be resumed.
  curl_api().easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_api().easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_api().easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024);
  curl_api().easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_api().easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_api().easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_api().easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_api().easy_setopt(c, CURLOPT_PREREQFUNCTION, on_connected);
  curl_api().easy_setopt(c, CURLOPT_PREREQDATA, &t);
  if (req.tls) {
    curl_api().easy_setopt(c, CURLOPT_SSL_VERIFYPEER, req.tls->verify ? 1L : 0L);
    curl_api().easy_setopt(c, CURLOPT_SSL_VERIFYHOST, req.tls->verify ? 2L : 0L);
    if (!req.tls->ca_pem.empty()) {
      curl_blob blob{const_cast<char*>(req.tls->ca_pem.data()), req.tls->ca_pem.size(), CURL_BLOB_NOCOPY};
      curl_api().easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
    }
  }
  if (req.method == "HEAD") {
    curl_api().easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method != "GET") {
    curl_api().easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    curl_api().easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_api().easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_api().easy_setopt(c, CURLOPT_READDATA, &t);
    if (!req.reader) curl_api().easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  }
  CURLcode rc = curl_api().easy_perform(c);
  if (t.error) std::rethrow_exception(t.error);
  if (rc != CURLE_OK) {
    std::string why = errbuf[0] ? errbuf : curl_api().easy_strerror(rc);
    throw TransportError(req.method + " " + req.url + ": " + why, rc, resp.sink_bytes, primary_ip(c));
  }
  curl_api().easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  resp.peer_ip = primary_ip(c);
  return resp;
}

std::string url_host(const std::string& url) {
  size_t s = url.find("://");
  size_t b = s == std::string::npos ? 0 : s + 3;
  size_t e = url.find_first_of("/?#", b);
  return url.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

std::string url_scheme(const std::string& url) {
  size_t s = url.find("://");
  std::string scheme = s == std::string::npos ? "" : url.substr(0, s);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
  return scheme;
}

std::string host_name(const std::string& host_port) {
  std::string h = host_port;
  if (!h.empty() && h[0] == '[') {
    h = h.substr(1, h.find(']') - 1);
  } else if (size_t colon = h.rfind(':'); colon != std::string::npos) {
    h.resize(colon);
  }
  std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return std::tolower(c); });
  return h;
}

bool is_loopback_address(const std::string& ip) {
  in_addr v4;
  if (inet_pton(AF_INET, ip.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  if (inet_pton(AF_INET6, ip.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

std::string resolve_url(const std::string& base, const std::string& location) {
  CURLU* u = curl_api().url();
  std::unique_ptr<CURLU, void (*)(CURLU*)> g(u, curl_api().url_cleanup);
  if (curl_api().url_set(u, CURLUPART_URL, base.c_str(), 0) != CURLUE_OK ||
      curl_api().url_set(u, CURLUPART_URL, location.c_str(), 0) != CURLUE_OK)
    throw Error("bad redirect location \"" + location + "\"");
  char* out = nullptr;
  if (curl_api().url_get(u, CURLUPART_URL, &out, 0) != CURLUE_OK) throw Error("bad redirect location \"" + location + "\"");
  std::string r = out;
  curl_api().free(out);
  return r;
}

std::string url_escape(const std::string& s) {
  char* e = curl_api().easy_escape(nullptr, s.data(), static_cast<int>(s.size()));
  std::string r = e ? e : "";
  curl_api().free(e);
  return r;
}

}  // namespace strata
