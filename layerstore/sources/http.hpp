#pragma once
// One HTTP request over libcurl, nothing registry-specific: the response body goes to a
// sink on 2xx (downloads stream straight on) and into `body` otherwise; an upload body is
// pulled from a reader (chunked) or given whole. Redirects are not followed here: the
// registry client decides whether the next host may see credentials.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "layerstore/archive/blob_ref.hpp"
#include "layerstore/error.hpp"

namespace strata {

struct TlsOptions {
  bool verify = true;
  std::string ca_pem;  // extra CAs (PEM), trusted besides the system's
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;                  // sent when `reader` is empty and the method sends one
  // Streaming upload (chunked): fills buf, returns bytes, 0 at the end.
  std::function<size_t(char* buf, size_t cap)> reader;
  BlobWriter sink;                   // 2xx body; empty: collected into HttpResponse::body
  // A Range request answered with the whole body (200): drop this many bytes first.
  uint64_t skip_if_full = 0;
  uint64_t max_body = 4 << 20;       // for collected bodies: more throws BodyTooLarge
  // Send nothing unless the connection (new or reused) is to a loopback address: checked
  // after connecting, before the request goes out, so a name that resolves elsewhere never
  // sees what a plain-HTTP loopback registry may see.
  bool loopback_peer_only = false;
  const TlsOptions* tls = nullptr;
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names; last value wins
  std::string body;
  uint64_t sink_bytes = 0;                     // bytes handed to the sink
  std::string peer_ip;                         // the address the request went to

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

// Connection or transfer failure (refused, reset, cut mid-body, TLS): may be retried.
class TransportError : public Error {
 public:
  TransportError(const std::string& what, int code, uint64_t received, std::string peer)
      : Error(what), curl_code(code), sink_bytes(received), peer_ip(std::move(peer)) {}
  int curl_code;
  uint64_t sink_bytes;  // how much of the body reached the sink before the failure
  std::string peer_ip;  // the address connected to, if the connection got that far
  bool certificate_problem() const;
  bool tls_handshake_problem() const;  // e.g. a plain-HTTP server answering TLS
};

// A collected body (an answer without a sink) went past HttpRequest::max_body.
class BodyTooLarge : public Error {
 public:
  using Error::Error;
};

// Throws TransportError, BodyTooLarge, or whatever the sink or reader threw.
HttpResponse http_perform(const HttpRequest& req);

// "https://h:p/a?b" -> "h:p"
std::string url_host(const std::string& url);
// "https://h:p/a?b" -> "https"
std::string url_scheme(const std::string& url);
// "h:p" -> "h", "[::1]:p" -> "::1"
std::string host_name(const std::string& host_port);
// An IP address (as libcurl reports it) in 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104.
bool is_loopback_address(const std::string& ip);
// `location` relative to `base` (RFC 3986), as a redirect is resolved.
std::string resolve_url(const std::string& base, const std::string& location);
std::string url_escape(const std::string& s);

}  // namespace strata
