// sf-go-baseline: singleflight.v1.SingleFlight written the plain Go way, on
// golang.org/x/sync/singleflight: the Go server that docs/PERFORMANCE.md
// compares singleflightd with in the hot-key regime (scripts/bench.py).
//
//	sf-go-baseline -listen 127.0.0.1:50071 -fetcher slow='echo:?delay=15s'
//
// Do joins the flight for (fetcher, key) with group.Do; its error, a gRPC
// status, is the RPC status of every waiter. Fetchers are `echo:` with an
// optional `?delay=DURATION` (the value is the leader's payload, or the key if
// the payload is empty); `echo` (no delay) always exists and is the default.
// InFlight lists the keys with callers waiting in Do (counted here, since
// x/sync does not say), with the age of the oldest wait. DoStream answers
// each item as Do would, in its own goroutine, one sender per stream; Forget
// is UNIMPLEMENTED. Built by bench/go/build.sh; see bench/go/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golang/protobuf/ptypes"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "sfbaseline/singleflight_v1"
)

const maxKeyBytes = 4096

// echoFetcher answers with the payload (or the key) after its delay.
type echoFetcher struct {
	delay time.Duration
}

func (f echoFetcher) fetch(key string, payload []byte) ([]byte, error) {
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if len(payload) == 0 {
		return []byte(key), nil
	}
	return payload, nil
}

func parseFetcher(uri string) (echoFetcher, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "echo" || u.Opaque != "" || u.Host != "" || u.Path != "" {
		return echoFetcher{}, fmt.Errorf("unsupported fetcher %q (only echo: or echo:?delay=DURATION)", uri)
	}
	var f echoFetcher
	for name, values := range u.Query() {
		if name != "delay" || len(values) != 1 {
			return echoFetcher{}, fmt.Errorf("fetcher %q: unknown option %q", uri, name)
		}
		if f.delay, err = time.ParseDuration(values[0]); err != nil || f.delay < 0 {
			return echoFetcher{}, fmt.Errorf("fetcher %q: bad delay %q", uri, values[0])
		}
	}
	return f, nil
}

// waiting is what InFlight shows of one (fetcher, key): how many Do calls
// are inside group.Do for it, and since when the oldest of them waits.
type waiting struct {
	fetcher, key string
	count        uint32
	since        time.Time
}

type server struct {
	pb.UnimplementedSingleFlightServer
	fetchers map[string]echoFetcher
	group    singleflight.Group

	mu      sync.Mutex
	waiters map[string]*waiting // By group key.
}

func (s *server) enter(groupKey, fetcher, key string) {
	s.mu.Lock()
	w := s.waiters[groupKey]
	if w == nil {
		w = &waiting{fetcher: fetcher, key: key, since: time.Now()}
		s.waiters[groupKey] = w
	}
	w.count++
	s.mu.Unlock()
}

func (s *server) leave(groupKey string) {
	s.mu.Lock()
	if w := s.waiters[groupKey]; w != nil {
		if w.count--; w.count == 0 {
			delete(s.waiters, groupKey)
		}
	}
	s.mu.Unlock()
}

func (s *server) Do(ctx context.Context, req *pb.DoRequest) (*pb.DoResponse, error) {
	if len(req.Key) == 0 || len(req.Key) > maxKeyBytes {
		return nil, status.Errorf(codes.InvalidArgument, "key must be 1..%d bytes", maxKeyBytes)
	}
	name := req.Fetcher
	if name == "" {
		name = "echo"
	}
	fetcher, ok := s.fetchers[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "unknown fetcher %q", name)
	}
	groupKey := name + "\x00" + req.Key
	key, payload := req.Key, req.Payload
	s.enter(groupKey, name, key)
	value, err, shared := s.group.Do(groupKey, func() (interface{}, error) {
		return fetcher.fetch(key, payload)
	})
	s.leave(groupKey)
	if err != nil {
		if _, isStatus := status.FromError(err); isStatus {
			return nil, err
		}
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &pb.DoResponse{Value: value.([]byte), Shared: shared}, nil
}

// DoStream reads items until the client half-closes, answers each one in a
// goroutine of its own, and ends once every reply is sent. One goroutine
// sends, so that replies are never written concurrently.
func (s *server) DoStream(stream pb.SingleFlight_DoStreamServer) error {
	replies := make(chan *pb.DoResponse)
	sent := make(chan error, 1)
	go func() {
		var err error
		for reply := range replies {
			if err == nil {
				err = stream.Send(reply)
			}
		}
		sent <- err
	}()
	var answering sync.WaitGroup
	var readErr error
	for {
		req, err := stream.Recv()
		if err != nil {
			if err != io.EOF {
				readErr = err
			}
			break
		}
		answering.Add(1)
		go func(req *pb.DoRequest) {
			defer answering.Done()
			reply, err := s.Do(stream.Context(), req)
			if err != nil {
				st := status.Convert(err)
				reply = &pb.DoResponse{Status: &pb.Status{Code: int32(st.Code()), Message: st.Message()}}
			}
			reply.Id = req.Id
			replies <- reply
		}(req)
	}
	answering.Wait()
	close(replies)
	if err := <-sent; err != nil {
		return err
	}
	return readErr
}

func (s *server) InFlight(ctx context.Context, _ *pb.InFlightRequest) (*pb.InFlightResponse, error) {
	now := time.Now()
	s.mu.Lock()
	list := make([]waiting, 0, len(s.waiters))
	for _, w := range s.waiters {
		list = append(list, *w)
	}
	s.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].since.Before(list[j].since) })
	resp := &pb.InFlightResponse{}
	for _, w := range list {
		resp.Flights = append(resp.Flights, &pb.Flight{
			Fetcher: w.fetcher,
			Key:     w.key,
			Waiters: w.count,
			Age:     ptypes.DurationProto(now.Sub(w.since)),
		})
	}
	return resp, nil
}

// fetcherFlags collects repeated -fetcher NAME=URI.
type fetcherFlags []string

func (f *fetcherFlags) String() string     { return strings.Join(*f, ",") }
func (f *fetcherFlags) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	listen := flag.String("listen", "127.0.0.1:50071", "HOST:PORT to serve on; port 0 picks a free port")
	var specs fetcherFlags
	flag.Var(&specs, "fetcher", "NAME=URI, repeatable; URI is echo: or echo:?delay=DURATION")
	flag.Parse()

	s := &server{
		fetchers: map[string]echoFetcher{"echo": {}},
		waiters:  map[string]*waiting{},
	}
	names := []string{"echo"}
	for _, spec := range specs {
		i := strings.IndexByte(spec, '=')
		if i <= 0 {
			log.Fatalf("sf-go-baseline: -fetcher %q: want NAME=URI", spec)
		}
		f, err := parseFetcher(spec[i+1:])
		if err != nil {
			log.Fatalf("sf-go-baseline: %v", err)
		}
		if _, seen := s.fetchers[spec[:i]]; !seen {
			names = append(names, spec[:i])
		}
		s.fetchers[spec[:i]] = f
	}

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("sf-go-baseline: cannot listen on %s: %v", *listen, err)
	}
	g := grpc.NewServer()
	pb.RegisterSingleFlightServer(g, s)
	// The same first line as singleflightd's, so scripts find the port.
	fmt.Printf("sf-go-baseline listening on %s (fetchers: %s)\n", lis.Addr(), strings.Join(names, ", "))
	os.Stdout.Sync()

	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
		<-signals
		// Calls still waiting on a slow flight would hold GracefulStop; end them.
		timer := time.AfterFunc(2*time.Second, g.Stop)
		g.GracefulStop()
		timer.Stop()
	}()
	if err := g.Serve(lis); err != nil {
		log.Fatalf("sf-go-baseline: %v", err)
	}
}
