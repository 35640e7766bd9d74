// libcurl, loaded by the first HTTP request instead of by every strata process.
//
// Only pull, push, login and the registry commands speak HTTP, but a binary linked against
// libcurl maps it and its 25 dependencies (TLS, Kerberos, LDAP, SSH, IDN, ...) at every start:
// 3.6 ms more per process with a warm page cache and ~30 ms with a cold one on the test VM,
// paid by every `strata run`, `ps` and container monitor. The functions strata uses are looked
// up once, with dlopen, from libcurl's stable soname (libcurl.so.4), so a machine without
// libcurl still runs everything but the network commands, which then say what is missing.
#pragma once

#include <curl/curl.h>

namespace strata {

struct CurlApi {
  CURLcode (*global_init)(long flags);
  CURLSH* (*share_init)();
  CURLSHcode (*share_setopt)(CURLSH*, CURLSHoption, ...);
  CURL* (*easy_init)();
  void (*easy_cleanup)(CURL*);
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  CURLcode (*easy_perform)(CURL*);
  const char* (*easy_strerror)(CURLcode);
  char* (*easy_escape)(CURL*, const char*, int);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
  CURLU* (*url)();
  void (*url_cleanup)(CURLU*);
  CURLUcode (*url_set)(CURLU*, CURLUPart, const char*, unsigned int);
  CURLUcode (*url_get)(const CURLU*, CURLUPart, char**, unsigned int);
  void (*free)(void*);
};

// The loaded library (once per process); throws strata::Error naming libcurl.so.4 and the
// loader's reason when it cannot be loaded or lacks a function (libcurl older than 7.62).
const CurlApi& curl_api();

}  // namespace strata
