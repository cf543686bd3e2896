// http_endpoint.h - a tiny HTTP server on the relay's event loop, for
// monitoring: GET requests for a few fixed paths, answered from a callback,
// one request per connection (HTTP/1.0 style: the server closes after the
// response). Knows nothing of the relay or of Prometheus.
//
// It is built so that a scraper, or anyone who can reach its port, cannot
// make it hold more than a few connections and kilobytes, nor slow the
// relay:
//  - at most kMaxClients connections at once; more are accepted and closed
//    at once (so the backlog cannot fill with them);
//  - a request (line and headers) of at most kMaxRequest bytes, complete
//    within kRequestTimeoutMs; anything else is a 400 and a close;
//  - a response is built once, in memory, and must be taken by the client
//    within kResponseTimeoutMs, or the connection is closed;
//  - the work per request is the callback's, run once per request.
// Methods other than GET and HEAD get a 405, unknown paths a 404.
#pragma once

#include <cstdint>
#include <string>

#include "event_loop.h"
#include "intrusive_list.h"
#include "io.h"

struct HttpResponse {
    int status = 200;                      // 200, 404, 503, ...
    const char* content_type = "text/plain; charset=utf-8";
    std::string body;
};

class HttpEndpoint final : public EventHandler {
   public:
    static constexpr int kMaxClients = 4;
    static constexpr size_t kMaxRequest = 4096;
    static constexpr uint64_t kRequestTimeoutMs = 5000;
    static constexpr uint64_t kResponseTimeoutMs = 5000;

    // Fills *out for a GET of path (query string removed); returns false
    // for an unknown path (a 404).
    class Handler {
       public:
        virtual ~Handler() = default;
        virtual bool on_http_get(const std::string& path, HttpResponse* out) = 0;
    };

    HttpEndpoint(EventLoop& loop, Handler& handler) : loop_(loop), handler_(handler) {}
    ~HttpEndpoint() override;
    HttpEndpoint(const HttpEndpoint&) = delete;
    HttpEndpoint& operator=(const HttpEndpoint&) = delete;

    // Listens on listen_fd (non-blocking, listening; taken over).
    bool start(int listen_fd);
    // Closes every connection that has outlived its deadline; call from the
    // loop's tick.
    void on_tick(uint64_t now_ms);
    // Stops accepting and closes every connection (shutdown).
    void stop();

    // EventHandler: the listening socket is readable; at the end of an
    // iteration, connections finished during it are freed (never inside the
    // batch that may still hold an event for one).
    void on_events(uint32_t events) override;
    void on_iteration_end() override;

    uint64_t requests() const { return requests_; }
    uint64_t bad_requests() const { return bad_requests_; }

   private:
    struct ClientTag {};
    class Client final : public EventHandler, public ListHook<ClientTag> {
       public:
        Client(HttpEndpoint& owner, int fd, uint64_t deadline_ms)
            : owner_(owner), fd_(fd), deadline_ms_(deadline_ms) {}
        ~Client() override;
        void on_events(uint32_t events) override;

        HttpEndpoint& owner_;
        int fd_;
        uint64_t deadline_ms_;
        std::string in_;
        std::string out_;
        size_t sent_ = 0;
        bool responding_ = false;
        bool done_ = false;  // closed; freed at the end of the iteration
    };

    void accept_clients();
    void read_request(Client& c);
    void respond(Client& c, const char* request);
    void write_response(Client& c);
    void finish(Client& c);

    EventLoop& loop_;
    Handler& handler_;
    int listen_fd_ = -1;
    IntrusiveList<Client, ClientTag> clients_;
    IntrusiveList<Client, ClientTag> done_;
    int client_count_ = 0;
    uint64_t requests_ = 0;
    uint64_t bad_requests_ = 0;
};
