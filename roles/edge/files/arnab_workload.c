/*
 * arnab-workload: the tier-2 test workloads of arnab.testbed, one static binary.
 *
 *   arnab-workload ramsim [--size-mib N] [--dirty-pct D] [--hot-pct P] [--period-ms T] [--seed S] [--port 7000]
 *       Allocates N MiB (default 1024), keeps rewriting D% of its pages every T ms (default 20% per
 *       1000 ms) with incompressible PRNG data, and proves on request that its memory is intact:
 *       page i always holds fill(seed, i, gen[i]) and gen[] lives in the same process, so after a
 *       CRIU restore "verify" recomputes every page and counts mismatches.
 *       Working set (--hot-pct P, default 100): the writer picks its pages (at random, with
 *       replacement) only among a hot set of P% of the pages: the first P% of a fixed pseudo-random
 *       permutation of all pages drawn from the seed, so the set is scattered over the mapping, the same
 *       for the same seed and P, and a smaller set lies inside a larger one. D stays the share of the
 *       WHOLE memory rewritten per period: D = P rewrites as many pages per period as the hot set holds
 *       (about 63% of them distinct), D > P rewrites the hot set more than once per period (no cap).
 *       Pages outside the hot set are written once at start and never again (until a `hot` command
 *       takes them in). P = 100 is the original behaviour (every page, same random sequence).
 *       Control: TCP (default port 7000), one command per line, one answer line each:
 *         status            -> ok ramsim pages=N size_mib=M dirty_pct=D period_ms=T writes=W gen_sum=G up_ms=U
 *                              now_ms=T pid=X hot_pct=P hot_pages=H
 *         verify            -> ok pages=N gen_sum=G writes=W verify_ms=T      (every page, hot and cold)
 *                              bad pages=N mismatches=K first=I gen=G ...
 *         dirty D           -> ok dirty_pct=D          (change the dirty rate, 0 pauses the writer)
 *         hot P             -> ok hot_pct=P hot_pages=H (pick the hot set anew for P% (0 < P <= 100),
 *                              from the seed as above; pages keep their contents and generations)
 *         hotinfo           -> ok hot_pct=P hot_pages=H pages=N rewritten=R rewritten_hot=A rewritten_cold=B
 *                              (pages rewritten at least once since start (gen > 0), split by membership
 *                              in the CURRENT hot set: 0 cold ones unless an earlier `hot` moved the set)
 *         page I            -> ok page=I gen=G hot=0|1  (one page's generation and hot-set membership)
 *         ping              -> pong now_ms=T seq=N      (cheap heartbeat for downtime probes)
 *         quit              -> closes the connection
 *       SIGUSR1 runs a verify and prints the answer line on stderr.
 *
 *   arnab-workload video [--port 8080] [--kbps 4000] [--rss-mib 14] [--seed S]
 *       HTTP server streaming a video-like body at a steady bitrate. GET /stream (or /) sends an
 *       endless body (Connection: close, no length) of 1316-byte packets (7 x 188, like MPEG-TS
 *       over UDP): "ARNB" magic, u32 flags, u32 reserved, u64 sequence, u64 byte offset, u64 send time (us,
 *       CLOCK_REALTIME), then PRNG(seed, sequence) payload, so a client can check that no byte was
 *       lost, duplicated or reordered. GET /status answers one JSON line. It keeps --rss-mib MiB of
 *       PRNG "segment cache" resident (default 14) so the container has a video server's footprint.
 *
 *   arnab-workload videocheck HOST PORT SECONDS
 *       Client for the stream: reads it for SECONDS, verifies every packet, and prints
 *       "ok bytes=B packets=N kbps=R max_gap_ms=G gaps_over_100ms=K" or "bad ...". Exit 0 iff ok.
 *
 *   arnab-workload ctl HOST PORT COMMAND
 *       Sends one control line (e.g. "verify") and prints the answer. Exit 0 iff it starts with ok/pong.
 *
 * Build: gcc -O2 -static -o arnab-workload arnab_workload.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS (PAGE / 8u)
#define MAXCL 64

/* ---------- helpers ---------- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t s = a ^ (b * 0xD6E8FEB86659FD93ull) ^ (c * 0xA0761D6478BD642Full);
	return splitmix64(&s);
}

/* xorshift128+ stream seeded from (seed, index, gen): fast incompressible fill. */
static void fill_words(uint64_t *w, size_t n, uint64_t seed, uint64_t idx, uint64_t gen)
{
	uint64_t s0 = mix3(seed, idx, gen) | 1, s1 = mix3(seed ^ 0x5bd1e995ull, idx, gen) | 2;
	for (size_t k = 0; k < n; k++) {
		uint64_t x = s0, y = s1;
		s0 = y;
		x ^= x << 23;
		s1 = x ^ y ^ (x >> 17) ^ (y >> 26);
		w[k] = s1 + y;
	}
}

static int check_words(const uint64_t *w, size_t n, uint64_t seed, uint64_t idx, uint64_t gen)
{
	uint64_t s0 = mix3(seed, idx, gen) | 1, s1 = mix3(seed ^ 0x5bd1e995ull, idx, gen) | 2;
	for (size_t k = 0; k < n; k++) {
		uint64_t x = s0, y = s1;
		s0 = y;
		x ^= x << 23;
		s1 = x ^ y ^ (x >> 17) ^ (y >> 26);
		if (w[k] != s1 + y)
			return 0;
	}
	return 1;
}

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int listen_tcp(int port)
{
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, zero = 0;
	struct sockaddr_in6 a;
	if (fd < 0) {
		perror("socket");
		exit(1);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	memset(&a, 0, sizeof(a));
	a.sin6_family = AF_INET6;
	a.sin6_addr = in6addr_any;
	a.sin6_port = htons((uint16_t)port);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0) {
		perror("bind/listen");
		exit(1);
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* Numeric addresses only (IPv4 or IPv6): the binary is static and must not need NSS. */
static int connect_tcp(const char *host, const char *port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)atoi(port));
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)atoi(port));
		sl = sizeof(struct sockaddr_in6);
	} else {
		fprintf(stderr, "not a numeric address: %s\n", host);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static const char *argval(int argc, char **argv, const char *name, const char *def)
{
	for (int i = 2; i < argc - 1; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return def;
}

/* ---------- ramsim ---------- */

static struct {
	uint8_t *mem;
	uint32_t *gen;
	size_t pages;
	uint64_t seed, writes, pings, rng, started_ns;
	double dirty_pct, hot_pct;
	size_t hot_pages;	/* the hot set: perm[0 .. hot_pages-1]; every page when hot_pages == pages */
	uint32_t *perm;		/* fixed pseudo-random order of all pages (from the seed), made on first use */
	uint8_t *hot;		/* hot[i] = 1 when page i is in the hot set; NULL: every page is */
	long period_ms;
	volatile sig_atomic_t usr1;
} R;

/* Pick the hot set for pct% of the pages: the first pct% of a permutation of all pages drawn once from the
 * seed (Fisher-Yates), so it does not depend on when it is picked. Returns -1 when out of memory. */
static int ramsim_set_hot(double pct)
{
	size_t n = (size_t)(pct / 100.0 * (double)R.pages + 0.5);
	if (n < 1)
		n = 1;
	if (n > R.pages)
		n = R.pages;
	if (n < R.pages && !R.perm) {
		uint32_t *perm = malloc(R.pages * sizeof(*perm));
		uint8_t *hot = malloc(R.pages);
		uint64_t s = R.seed ^ 0x686f74736574ull; /* "hotset": not the writer's stream */
		if (!perm || !hot) {
			free(perm);
			free(hot);
			return -1;
		}
		for (size_t i = 0; i < R.pages; i++)
			perm[i] = (uint32_t)i;
		for (size_t i = R.pages - 1; i > 0; i--) {
			size_t j = (size_t)(splitmix64(&s) % (i + 1));
			uint32_t t = perm[i];
			perm[i] = perm[j];
			perm[j] = t;
		}
		R.perm = perm;
		R.hot = hot;
	}
	if (R.hot) {
		memset(R.hot, 0, R.pages);
		for (size_t k = 0; k < n; k++)
			R.hot[R.perm[k]] = 1;
	}
	R.hot_pct = pct;
	R.hot_pages = n;
	return 0;
}

static int is_hot(size_t i)
{
	return R.hot_pages == R.pages || !R.hot || R.hot[i];
}

/* The next page the writer rewrites: uniform over the hot set (over all pages exactly as before at 100%). */
static size_t ramsim_pick(void)
{
	if (R.hot_pages == R.pages)
		return (size_t)(splitmix64(&R.rng) % R.pages);
	return R.perm[splitmix64(&R.rng) % R.hot_pages];
}

static void ramsim_write_page(size_t i)
{
	R.gen[i]++;
	fill_words((uint64_t *)(R.mem + i * PAGE), WORDS, R.seed, i, R.gen[i]);
	R.writes++;
}

static uint64_t gen_sum(void)
{
	uint64_t s = 0;
	for (size_t i = 0; i < R.pages; i++)
		s += R.gen[i];
	return s;
}

static int ramsim_verify(char *out, size_t len)
{
	uint64_t t0 = now_ns(CLOCK_MONOTONIC), bad = 0, first = 0;
	for (size_t i = 0; i < R.pages; i++) {
		if (!check_words((const uint64_t *)(R.mem + i * PAGE), WORDS, R.seed, i, R.gen[i])) {
			if (!bad)
				first = i;
			bad++;
		}
	}
	uint64_t ms = (now_ns(CLOCK_MONOTONIC) - t0) / UINT64_C(1000000);
	if (bad)
		snprintf(out, len, "bad pages=%zu mismatches=%" PRIu64 " first=%" PRIu64 " gen=%u verify_ms=%" PRIu64 "\n",
			 R.pages, bad, first, R.gen[first], ms);
	else
		snprintf(out, len, "ok pages=%zu gen_sum=%" PRIu64 " writes=%" PRIu64 " verify_ms=%" PRIu64 "\n",
			 R.pages, gen_sum(), R.writes, ms);
	return bad == 0;
}

static void on_usr1(int sig)
{
	(void)sig;
	R.usr1 = 1;
}

struct client {
	int fd;
	size_t len;
	char buf[256];
};

static void ramsim_command(struct client *c, char *line)
{
	char out[512];
	uint64_t now_ms = now_ns(CLOCK_REALTIME) / UINT64_C(1000000);
	if (strcmp(line, "verify") == 0) {
		ramsim_verify(out, sizeof(out));
	} else if (strcmp(line, "status") == 0) {
		snprintf(out, sizeof(out),
			 "ok ramsim pages=%zu size_mib=%zu dirty_pct=%.2f period_ms=%ld writes=%" PRIu64
			 " gen_sum=%" PRIu64 " up_ms=%" PRIu64 " now_ms=%" PRIu64 " pid=%d hot_pct=%.2f hot_pages=%zu\n",
			 R.pages, R.pages * PAGE >> 20, R.dirty_pct, R.period_ms, R.writes, gen_sum(),
			 (now_ns(CLOCK_MONOTONIC) - R.started_ns) / UINT64_C(1000000), now_ms, (int)getpid(),
			 R.hot_pct, R.hot_pages);
	} else if (strncmp(line, "dirty ", 6) == 0) {
		double p = atof(line + 6);
		if (p < 0 || p > 100) {
			snprintf(out, sizeof(out), "error dirty_pct must be 0..100\n");
		} else {
			R.dirty_pct = p;
			snprintf(out, sizeof(out), "ok dirty_pct=%.2f\n", p);
		}
	} else if (strncmp(line, "hot ", 4) == 0) {
		double p = atof(line + 4);
		if (!(p > 0 && p <= 100))
			snprintf(out, sizeof(out), "error hot_pct must be > 0 and <= 100\n");
		else if (ramsim_set_hot(p) < 0)
			snprintf(out, sizeof(out), "error out of memory for the hot set\n");
		else
			snprintf(out, sizeof(out), "ok hot_pct=%.2f hot_pages=%zu\n", R.hot_pct, R.hot_pages);
	} else if (strcmp(line, "hotinfo") == 0) {
		size_t hot_done = 0, cold_done = 0;
		for (size_t i = 0; i < R.pages; i++)
			if (R.gen[i]) {
				if (is_hot(i))
					hot_done++;
				else
					cold_done++;
			}
		snprintf(out, sizeof(out),
			 "ok hot_pct=%.2f hot_pages=%zu pages=%zu rewritten=%zu rewritten_hot=%zu rewritten_cold=%zu\n",
			 R.hot_pct, R.hot_pages, R.pages, hot_done + cold_done, hot_done, cold_done);
	} else if (strncmp(line, "page ", 5) == 0) {
		char *end;
		unsigned long long i = strtoull(line + 5, &end, 10);
		if (end == line + 5 || *end || i >= R.pages)
			snprintf(out, sizeof(out), "error page must be 0..%zu\n", R.pages - 1);
		else
			snprintf(out, sizeof(out), "ok page=%llu gen=%u hot=%d\n", i, R.gen[i], is_hot((size_t)i));
	} else if (strcmp(line, "ping") == 0) {
		snprintf(out, sizeof(out), "pong now_ms=%" PRIu64 " seq=%" PRIu64 "\n", now_ms, ++R.pings);
	} else if (strcmp(line, "quit") == 0) {
		close(c->fd);
		c->fd = -1;
		return;
	} else {
		snprintf(out, sizeof(out), "error unknown command (status|verify|dirty D|hot P|hotinfo|page I|ping|quit)\n");
	}
	if (send(c->fd, out, strlen(out), MSG_NOSIGNAL) < 0) {
		close(c->fd);
		c->fd = -1;
	}
}

static void serve_clients(int lfd, struct client *cl, int timeout_ms, void (*cmd)(struct client *, char *))
{
	struct pollfd pfd[MAXCL + 1];
	int n = 0, idx[MAXCL + 1];
	pfd[n].fd = lfd;
	pfd[n].events = POLLIN;
	idx[n++] = -1;
	for (int i = 0; i < MAXCL; i++)
		if (cl[i].fd >= 0) {
			pfd[n].fd = cl[i].fd;
			pfd[n].events = POLLIN;
			idx[n++] = i;
		}
	if (poll(pfd, (nfds_t)n, timeout_ms) <= 0)
		return;
	if (pfd[0].revents & POLLIN) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0) {
			int i;
			for (i = 0; i < MAXCL && cl[i].fd >= 0; i++)
				;
			if (i == MAXCL) {
				close(fd);
			} else {
				cl[i].fd = fd;
				cl[i].len = 0;
			}
		}
	}
	for (int k = 1; k < n; k++) {
		struct client *c = &cl[idx[k]];
		if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) || c->fd < 0)
			continue;
		ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
		if (r <= 0) {
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			close(c->fd);
			c->fd = -1;
			continue;
		}
		c->len += (size_t)r;
		c->buf[c->len] = 0;
		char *nl;
		while (c->fd >= 0 && (nl = strchr(c->buf, '\n')) != NULL) {
			*nl = 0;
			if (nl > c->buf && nl[-1] == '\r')
				nl[-1] = 0;
			char line[256];
			snprintf(line, sizeof(line), "%s", c->buf);
			size_t rest = c->len - (size_t)(nl + 1 - c->buf);
			memmove(c->buf, nl + 1, rest + 1);
			c->len = rest;
			cmd(c, line);
		}
		if (c->fd >= 0 && c->len >= sizeof(c->buf) - 1) {
			close(c->fd);
			c->fd = -1;
		}
	}
}

static int ramsim_main(int argc, char **argv)
{
	size_t size_mib = (size_t)atol(argval(argc, argv, "--size-mib", "1024"));
	int port = atoi(argval(argc, argv, "--port", "7000"));
	struct client cl[MAXCL];
	R.dirty_pct = atof(argval(argc, argv, "--dirty-pct", "20"));
	R.period_ms = atol(argval(argc, argv, "--period-ms", "1000"));
	R.seed = strtoull(argval(argc, argv, "--seed", "12345"), NULL, 0);
	double hot_pct = atof(argval(argc, argv, "--hot-pct", "100"));
	if (size_mib == 0 || R.period_ms <= 0 || R.dirty_pct < 0 || R.dirty_pct > 100 || !(hot_pct > 0 && hot_pct <= 100)) {
		fprintf(stderr, "ramsim: bad arguments\n");
		return 2;
	}
	R.pages = size_mib * (1048576 / PAGE);
	R.mem = mmap(NULL, R.pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	R.gen = calloc(R.pages, sizeof(*R.gen));
	if (R.mem == MAP_FAILED || !R.gen) {
		perror("ramsim: allocate");
		return 1;
	}
	if (ramsim_set_hot(hot_pct) < 0) {
		perror("ramsim: allocate the hot set");
		return 1;
	}
	madvise(R.mem, R.pages * PAGE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < R.pages; i++)
		fill_words((uint64_t *)(R.mem + i * PAGE), WORDS, R.seed, i, 0);
	R.rng = R.seed ^ 0x1234567ull;
	R.started_ns = now_ns(CLOCK_MONOTONIC);
	signal(SIGUSR1, on_usr1);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < MAXCL; i++)
		cl[i].fd = -1;
	int lfd = listen_tcp(port);
	fprintf(stderr, "ramsim: %zu MiB (%zu pages), rewriting %.2f%% every %ld ms within a hot set of %.2f%% (%zu pages), "
		"control tcp/%d\n", size_mib, R.pages, R.dirty_pct, R.period_ms, R.hot_pct, R.hot_pages, port);

	/* Rewrite in 10 ms slices: each slice owes dirty_pct% * pages * 10 / period_ms pages (of the WHOLE memory),
	 * picked within the hot set. */
	const long slice_ms = 10;
	double owed = 0;
	uint64_t next = now_ns(CLOCK_MONOTONIC);
	for (;;) {
		uint64_t t = now_ns(CLOCK_MONOTONIC);
		if (t >= next) {
			/* After a freeze (checkpoint) do not try to catch up more than one period. */
			if (t - next > (uint64_t)R.period_ms * 1000000ull)
				next = t;
			next += (uint64_t)slice_ms * 1000000ull;
			owed += R.dirty_pct / 100.0 * (double)R.pages * (double)slice_ms / (double)R.period_ms;
			while (owed >= 1.0) {
				ramsim_write_page(ramsim_pick());
				owed -= 1.0;
			}
		}
		if (R.usr1) {
			char out[256];
			R.usr1 = 0;
			ramsim_verify(out, sizeof(out));
			fputs(out, stderr);
		}
		t = now_ns(CLOCK_MONOTONIC);
		int wait = t >= next ? 0 : (int)((next - t) / UINT64_C(1000000));
		serve_clients(lfd, cl, wait, ramsim_command);
	}
}

/* ---------- video ---------- */

#define PKT 1316u
#define HDR 36u
#define MAGIC "ARNB"

struct vclient {
	int fd, streaming;
	uint64_t seq, sent, started_ns;
	size_t off, len;
	char req[1024];
	size_t rlen;
	unsigned char pkt[PKT * 16];
};

static void make_packet(unsigned char *p, uint64_t seed, uint64_t seq)
{
	uint64_t off = seq * PKT, us = now_ns(CLOCK_REALTIME) / 1000ull;
	uint32_t flags = 0;
	memcpy(p, MAGIC, 4);
	memcpy(p + 4, &flags, 4);
	memcpy(p + 12, &seq, 8);
	memcpy(p + 20, &off, 8);
	memcpy(p + 28, &us, 8);
	memcpy(p + 8, &flags, 4);
	uint64_t w[(PKT - HDR + 7) / 8];
	fill_words(w, (PKT - HDR + 7) / 8, seed, seq, 0);
	memcpy(p + HDR, w, PKT - HDR);
}

static int video_main(int argc, char **argv)
{
	int port = atoi(argval(argc, argv, "--port", "8080"));
	double kbps = atof(argval(argc, argv, "--kbps", "4000"));
	size_t rss_mib = (size_t)atol(argval(argc, argv, "--rss-mib", "14"));
	uint64_t seed = strtoull(argval(argc, argv, "--seed", "4242"), NULL, 0);
	struct vclient *cl = calloc(MAXCL, sizeof(*cl));
	uint64_t total_bytes = 0, total_clients = 0, started = now_ns(CLOCK_MONOTONIC);
	if (kbps <= 0 || !cl)
		return 2;
	/* The "segment cache": resident, incompressible, refreshed slowly like a real server's buffers. */
	size_t cache_words = rss_mib * 1048576 / 8;
	uint64_t *cache = cache_words ? malloc(cache_words * 8) : NULL;
	if (cache)
		fill_words(cache, cache_words, seed, ~0ull, 0);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < MAXCL; i++)
		cl[i].fd = -1;
	int lfd = listen_tcp(port);
	double bytes_per_ns = kbps * 1000.0 / 8.0 / 1e9;
	fprintf(stderr, "video: http tcp/%d, %.0f kbit/s per client, %zu MiB resident cache\n", port, kbps, rss_mib);
	uint64_t cache_pos = 0;
	for (;;) {
		struct pollfd pfd[MAXCL + 1];
		int n = 0, idx[MAXCL + 1];
		pfd[n].fd = lfd;
		pfd[n].events = POLLIN;
		idx[n++] = -1;
		for (int i = 0; i < MAXCL; i++)
			if (cl[i].fd >= 0) {
				pfd[n].fd = cl[i].fd;
				pfd[n].events = cl[i].streaming ? (cl[i].len > cl[i].off ? POLLOUT : 0) : POLLIN;
				idx[n++] = i;
			}
		poll(pfd, (nfds_t)n, 5);
		if (pfd[0].revents & POLLIN) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
			int i;
			for (i = 0; fd >= 0 && i < MAXCL && cl[i].fd >= 0; i++)
				;
			if (fd >= 0 && i < MAXCL) {
				memset(&cl[i], 0, offsetof(struct vclient, pkt));
				cl[i].fd = fd;
			} else if (fd >= 0) {
				close(fd);
			}
		}
		uint64_t t = now_ns(CLOCK_MONOTONIC);
		for (int k = 1; k < n; k++) {
			struct vclient *c = &cl[idx[k]];
			if (!c->streaming && (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))) {
				ssize_t r = recv(c->fd, c->req + c->rlen, sizeof(c->req) - 1 - c->rlen, 0);
				if (r <= 0) {
					if (!(r < 0 && errno == EAGAIN)) {
						close(c->fd);
						c->fd = -1;
					}
					continue;
				}
				c->rlen += (size_t)r;
				c->req[c->rlen] = 0;
				if (!strstr(c->req, "\r\n\r\n") && !strstr(c->req, "\n\n")) {
					if (c->rlen >= sizeof(c->req) - 1) {
						close(c->fd);
						c->fd = -1;
					}
					continue;
				}
				char hdr[512];
				if (strncmp(c->req, "GET /status", 11) == 0) {
					char body[256];
					int active = 0;
					for (int i = 0; i < MAXCL; i++)
						active += cl[i].fd >= 0 && cl[i].streaming;
					snprintf(body, sizeof(body),
						 "{\"kbps\": %.0f, \"clients\": %d, \"clients_total\": %" PRIu64
						 ", \"bytes_total\": %" PRIu64 ", \"up_ms\": %" PRIu64 ", \"pid\": %d}\n",
						 kbps, active, total_clients, total_bytes, (t - started) / UINT64_C(1000000),
						 (int)getpid());
					snprintf(hdr, sizeof(hdr),
						 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
						 "Connection: close\r\n\r\n%s",
						 strlen(body), body);
					send(c->fd, hdr, strlen(hdr), MSG_NOSIGNAL);
					close(c->fd);
					c->fd = -1;
				} else if (strncmp(c->req, "GET / ", 6) == 0 || strncmp(c->req, "GET /stream", 11) == 0) {
					snprintf(hdr, sizeof(hdr),
						 "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
						 "X-Arnab-Packet: %u\r\nX-Arnab-Kbps: %.0f\r\nCache-Control: no-store\r\n"
						 "Connection: close\r\n\r\n",
						 PKT, kbps);
					memcpy(c->pkt, hdr, strlen(hdr));
					c->off = 0;
					c->len = strlen(hdr);
					c->streaming = 1;
					c->started_ns = t;
					total_clients++;
				} else {
					const char *nf = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
					send(c->fd, nf, strlen(nf), MSG_NOSIGNAL);
					close(c->fd);
					c->fd = -1;
				}
				continue;
			}
			if (!c->streaming || c->fd < 0)
				continue;
			/* Steady bitrate: bytes due since the stream started; after a long stall (migration)
			 * catch up at most 2 s of backlog, the rest is simply delivered later. */
			double due = (double)(t - c->started_ns) * bytes_per_ns;
			double cap = kbps * 1000.0 / 8.0 * 2.0;
			if (due - (double)c->sent > cap) {
				c->started_ns = t - (uint64_t)(((double)c->sent + cap) / bytes_per_ns);
				due = (double)c->sent + cap;
			}
			while (c->fd >= 0) {
				if (c->off == c->len) {
					if ((double)c->sent + PKT > due)
						break;
					make_packet(c->pkt, seed, c->seq++);
					c->off = 0;
					c->len = PKT;
					c->sent += PKT;
				}
				ssize_t w = send(c->fd, c->pkt + c->off, c->len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);
				if (w < 0) {
					if (errno != EAGAIN && errno != EINTR) {
						close(c->fd);
						c->fd = -1;
					}
					break;
				}
				c->off += (size_t)w;
				total_bytes += (uint64_t)w;
			}
		}
		/* touch a slice of the cache each round so it stays resident and changes a little */
		if (cache) {
			uint64_t s = seed + cache_pos;
			cache[cache_pos % cache_words] ^= splitmix64(&s);
			cache_pos += 4096 / 8;
		}
	}
}

/* ---------- clients ---------- */

static int videocheck_main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: arnab-workload videocheck HOST PORT SECONDS\n");
		return 2;
	}
	double secs = atof(argv[4]);
	int fd = connect_tcp(argv[2], argv[3]);
	if (fd < 0) {
		printf("bad connect=failed\n");
		return 1;
	}
	const char *req = "GET /stream HTTP/1.1\r\nHost: video\r\n\r\n";
	send(fd, req, strlen(req), MSG_NOSIGNAL);
	static unsigned char buf[65536], pkt[PKT], want[PKT];
	size_t have = 0, plen = 0;
	int header_done = 0;
	uint64_t seq = 0, bytes = 0, bad = 0, gaps100 = 0, max_gap = 0, seed = 4242;
	uint64_t t0 = now_ns(CLOCK_MONOTONIC), last = t0, end = t0 + (uint64_t)(secs * 1e9);
	struct timeval tv = {0, 200000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	const char *seedenv = getenv("ARNAB_VIDEO_SEED");
	if (seedenv)
		seed = strtoull(seedenv, NULL, 0);
	while (now_ns(CLOCK_MONOTONIC) < end) {
		ssize_t r = recv(fd, buf + have, sizeof(buf) - have, 0);
		uint64_t t = now_ns(CLOCK_MONOTONIC);
		if (r == 0)
			break;
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			break;
		}
		if (t - last > max_gap)
			max_gap = t - last;
		if (t - last > 100000000ull)
			gaps100++;
		last = t;
		have += (size_t)r;
		size_t pos = 0;
		if (!header_done) {
			unsigned char *e = memmem(buf, have, "\r\n\r\n", 4);
			if (!e)
				continue;
			pos = (size_t)(e - buf) + 4;
			header_done = 1;
		}
		while (pos < have) {
			size_t take = have - pos < PKT - plen ? have - pos : PKT - plen;
			memcpy(pkt + plen, buf + pos, take);
			plen += take;
			pos += take;
			bytes += take;
			if (plen == PKT) {
				uint64_t s, off;
				memcpy(&s, pkt + 12, 8);
				memcpy(&off, pkt + 20, 8);
				make_packet(want, seed, seq);
				if (memcmp(pkt, MAGIC, 4) != 0 || s != seq || off != seq * PKT ||
				    memcmp(pkt + HDR, want + HDR, PKT - HDR) != 0) {
					if (!bad)
						fprintf(stderr, "first bad packet: expected seq %" PRIu64 " got %" PRIu64 "\n",
							seq, s);
					bad++;
					seq = s;
				}
				seq++;
				plen = 0;
			}
		}
		have = 0;
	}
	double el = (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
	int ok = bad == 0 && seq > 0;
	printf("%s bytes=%" PRIu64 " packets=%" PRIu64 " bad_packets=%" PRIu64 " kbps=%.0f max_gap_ms=%.1f "
	       "gaps_over_100ms=%" PRIu64 " seconds=%.1f\n",
	       ok ? "ok" : "bad", bytes, seq, bad, bytes * 8.0 / 1000.0 / (el > 0 ? el : 1), max_gap / 1e6, gaps100,
	       el);
	close(fd);
	return ok ? 0 : 1;
}

static int ctl_main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: arnab-workload ctl HOST PORT COMMAND\n");
		return 2;
	}
	int fd = connect_tcp(argv[2], argv[3]);
	if (fd < 0) {
		printf("error connect failed\n");
		return 1;
	}
	char line[300], out[1024];
	snprintf(line, sizeof(line), "%s\n", argv[4]);
	send(fd, line, strlen(line), MSG_NOSIGNAL);
	size_t n = 0;
	while (n < sizeof(out) - 1) {
		ssize_t r = recv(fd, out + n, sizeof(out) - 1 - n, 0);
		if (r <= 0)
			break;
		n += (size_t)r;
		if (memchr(out, '\n', n))
			break;
	}
	out[n] = 0;
	fputs(out, stdout);
	close(fd);
	return (strncmp(out, "ok", 2) == 0 || strncmp(out, "pong", 4) == 0) ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: arnab-workload ramsim|video|videocheck|ctl ...\n");
		return 2;
	}
	setvbuf(stderr, NULL, _IOLBF, 0);
	if (strcmp(argv[1], "ramsim") == 0)
		return ramsim_main(argc, argv);
	if (strcmp(argv[1], "video") == 0)
		return video_main(argc, argv);
	if (strcmp(argv[1], "videocheck") == 0)
		return videocheck_main(argc, argv);
	if (strcmp(argv[1], "ctl") == 0)
		return ctl_main(argc, argv);
	fprintf(stderr, "unknown mode %s\n", argv[1]);
	return 2;
}
