/*
 * An example singleflight fetcher plugin, written against
 * include/singleflight/fetcher_plugin.h only.
 *
 * The value of a fetch is PREFIX followed by the payload reversed, or the
 * key reversed when the payload is empty. It is delivered after `delay_ms`
 * by a worker thread of the instance, which keeps the pending fetches in a
 * list ordered by due time; with delay_ms=0 it is delivered at once, from
 * inside fetch(). cancel() takes a pending fetch out of the list and
 * completes it with CANCELLED.
 *
 * Settings (all optional):
 *   prefix=TEXT     put before every value (default: none)
 *   delay_ms=N      milliseconds before a value is delivered (default: 0)
 *   fail=CODE       complete every fetch with google.rpc code CODE (1..16)
 *                   instead of a value
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "singleflight/fetcher_plugin.h"

/* One fetch waiting for its due time. */
struct pending {
  struct pending* next;
  struct timespec due; /* CLOCK_MONOTONIC */
  sf_completion* completion;
  sf_complete_fn complete;
  int code;
  char* data; /* the value, or the error message */
  size_t size;
};

struct instance {
  char* prefix;
  long delay_ms;
  int fail_code;

  pthread_mutex_t mu;
  pthread_cond_t changed; /* on CLOCK_MONOTONIC */
  int stopping;           /* guarded by mu */
  struct pending* head;   /* guarded by mu; ordered by due time */
  pthread_t worker;
};

static void set_error(char* error, size_t error_size, const char* format, ...) {
  va_list args;
  va_start(args, format);
  if (error_size > 0) vsnprintf(error, error_size, format, args);
  va_end(args);
}

/* Parses a whole decimal number in [min, max]; returns 0 on success. */
static int parse_long(const char* text, long min, long max, long* out) {
  char* end = NULL;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
    return -1;
  }
  *out = value;
  return 0;
}

static int timespec_before(const struct timespec* a, const struct timespec* b) {
  return a->tv_sec < b->tv_sec ||
         (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void finish(struct pending* p) {
  p->complete(p->completion, p->code, p->data, p->size);
  free(p->data);
  free(p);
}

static void finish_cancelled(struct pending* p, const char* why) {
  p->complete(p->completion, SF_CODE_CANCELLED, why, strlen(why));
  free(p->data);
  free(p);
}

/* Delivers each pending fetch when it is due, until the instance stops. */
static void* work(void* arg) {
  struct instance* self = arg;
  pthread_mutex_lock(&self->mu);
  while (!self->stopping) {
    if (self->head == NULL) {
      pthread_cond_wait(&self->changed, &self->mu);
      continue;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (timespec_before(&now, &self->head->due)) {
      pthread_cond_timedwait(&self->changed, &self->mu, &self->head->due);
      continue;
    }
    struct pending* due = self->head;
    self->head = due->next;
    /* Completed without the lock: the host may call fetch() or cancel()
     * from inside complete. */
    pthread_mutex_unlock(&self->mu);
    finish(due);
    pthread_mutex_lock(&self->mu);
  }
  pthread_mutex_unlock(&self->mu);
  return NULL;
}

static void destroy(void* instance) {
  struct instance* self = instance;
  pthread_mutex_lock(&self->mu);
  self->stopping = 1;
  struct pending* left = self->head;
  self->head = NULL;
  pthread_cond_signal(&self->changed);
  pthread_mutex_unlock(&self->mu);
  pthread_join(self->worker, NULL);
  while (left != NULL) {
    struct pending* next = left->next;
    finish_cancelled(left, "example plugin destroyed");
    left = next;
  }
  pthread_cond_destroy(&self->changed);
  pthread_mutex_destroy(&self->mu);
  free(self->prefix);
  free(self);
}

static int apply_setting(struct instance* self, const char* name,
                         const char* value, char* error, size_t error_size) {
  if (strcmp(name, "prefix") == 0) {
    free(self->prefix);
    self->prefix = strdup(value);
    if (self->prefix != NULL) return 0;
    set_error(error, error_size, "out of memory");
    return -1;
  }
  if (strcmp(name, "delay_ms") == 0) {
    if (parse_long(value, 0, 3600 * 1000, &self->delay_ms) == 0) return 0;
    set_error(error, error_size,
              "%s=\"%s\" is not a number of milliseconds (0..3600000)", name,
              value);
    return -1;
  }
  if (strcmp(name, "fail") == 0) {
    long code = 0;
    if (parse_long(value, SF_CODE_CANCELLED, SF_CODE_UNAUTHENTICATED, &code) ==
        0) {
      self->fail_code = (int)code;
      return 0;
    }
    set_error(error, error_size, "%s=\"%s\" is not a google.rpc code (1..16)",
              name, value);
    return -1;
  }
  set_error(error, error_size,
            "unknown setting \"%s\" (known: prefix, delay_ms, fail)", name);
  return -1;
}

static void* create(const char* const* names, const char* const* values,
                    size_t count, char* error, size_t error_size) {
  struct instance* self = calloc(1, sizeof(*self));
  if (self == NULL) {
    set_error(error, error_size, "out of memory");
    return NULL;
  }
  for (size_t i = 0; i < count; ++i) {
    if (apply_setting(self, names[i], values[i], error, error_size) != 0) {
      free(self->prefix);
      free(self);
      return NULL;
    }
  }
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&self->changed, &attr);
  pthread_condattr_destroy(&attr);
  pthread_mutex_init(&self->mu, NULL);
  int error_number = pthread_create(&self->worker, NULL, work, self);
  if (error_number != 0) {
    set_error(error, error_size, "cannot start the worker thread: %s",
              strerror(error_number));
    pthread_cond_destroy(&self->changed);
    pthread_mutex_destroy(&self->mu);
    free(self->prefix);
    free(self);
    return NULL;
  }
  return self;
}

/* The value (or, with fail=CODE, the message) for one fetch, malloc'ed. */
static char* make_result(const struct instance* self, const char* key,
                         size_t key_size, const char* payload,
                         size_t payload_size, size_t* size) {
  static const char kFailure[] = "example plugin: failing as configured";
  if (self->fail_code != SF_CODE_OK) {
    *size = sizeof(kFailure) - 1;
    char* message = malloc(*size);
    if (message != NULL) memcpy(message, kFailure, *size);
    return message;
  }
  const char* source = payload_size > 0 ? payload : key;
  size_t source_size = payload_size > 0 ? payload_size : key_size;
  size_t prefix_size = self->prefix == NULL ? 0 : strlen(self->prefix);
  *size = prefix_size + source_size;
  char* value = malloc(*size > 0 ? *size : 1);
  if (value == NULL) return NULL;
  if (prefix_size > 0) memcpy(value, self->prefix, prefix_size);
  for (size_t i = 0; i < source_size; ++i) {
    value[prefix_size + i] = source[source_size - 1 - i];
  }
  return value;
}

static void fetch(void* instance, const char* key, size_t key_size,
                  const char* payload, size_t payload_size,
                  sf_completion* completion, sf_complete_fn complete) {
  static const char kNoMemory[] = "example plugin: out of memory";
  struct instance* self = instance;
  struct pending* p = calloc(1, sizeof(*p));
  char* data = p == NULL ? NULL
                         : make_result(self, key, key_size, payload,
                                       payload_size, &p->size);
  if (data == NULL) {
    free(p);
    complete(completion, SF_CODE_RESOURCE_EXHAUSTED, kNoMemory,
             sizeof(kNoMemory) - 1);
    return;
  }
  p->completion = completion;
  p->complete = complete;
  p->code = self->fail_code;
  p->data = data;
  if (self->delay_ms == 0) {
    finish(p);
    return;
  }
  clock_gettime(CLOCK_MONOTONIC, &p->due);
  p->due.tv_sec += self->delay_ms / 1000;
  p->due.tv_nsec += (self->delay_ms % 1000) * 1000000L;
  if (p->due.tv_nsec >= 1000000000L) {
    p->due.tv_sec += 1;
    p->due.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&self->mu);
  struct pending** link = &self->head;
  while (*link != NULL && !timespec_before(&p->due, &(*link)->due)) {
    link = &(*link)->next;
  }
  p->next = *link;
  *link = p;
  pthread_cond_signal(&self->changed);
  pthread_mutex_unlock(&self->mu);
}

static void cancel(void* instance, sf_completion* completion) {
  struct instance* self = instance;
  struct pending* found = NULL;
  pthread_mutex_lock(&self->mu);
  for (struct pending** link = &self->head; *link != NULL;
       link = &(*link)->next) {
    if ((*link)->completion == completion) {
      found = *link;
      *link = found->next;
      break;
    }
  }
  pthread_mutex_unlock(&self->mu);
  /* Not found: already delivered, or being delivered by the worker. */
  if (found != NULL) finish_cancelled(found, "example plugin: cancelled");
}

static const struct sf_plugin_v1 kPlugin = {
    SF_PLUGIN_ABI_VERSION, create, fetch, cancel, destroy,
};

const struct sf_plugin_v1* sf_plugin_entry(void) { return &kPlugin; }
