%% hive_peer: the Erlang/OTP peer of the hive benchmark suite.
%%
%% The same workloads as hive-bench, written the way an Erlang programmer
%% would write them (spawn, receive, gen_server, erlang:send_after), with
%% the same parameters and the same JSON line per run on stdout.
%%
%% Build:
%%   mkdir -p build/peers/erlang
%%   erlc -o build/peers/erlang bench/peers/erlang/hive_peer.erl
%% Run:
%%   erl -noshell -pa build/peers/erlang +P 4000000 -s hive_peer main \
%%       -extra [--only NAME[,NAME...]] [--repeat N] [--quick] [--list]
%%
%% Flags: --only NAMES runs only these workloads (comma separated), --repeat N prints N lines per
%% workload, --quick uses small parameters, --list prints the workload
%% names. --json is accepted and ignored (the output is always JSON).
%%
%% Every run verifies its result; a failed verification prints
%% "ok":false with an "error" field, and its rate is not meaningful.

-module(hive_peer).
-behaviour(gen_server).

-export([main/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2,
         terminate/2, code_change/3]).
-export([start_sr_worker/1]).

-define(RING_SIZE, 503).
-define(SENDERS, 4).
-define(STORM_CALL_TIMEOUT_MS, 5).
-define(STORM_REPLY_DELAY_MS, 20).
-define(WAIT_MS, 120000).

%%--------------------------------------------------------------------
%% Command line
%%--------------------------------------------------------------------

workloads() ->
    [ping_pong, thread_ring, spawn, spawn_idle_servers, fork_join,
     send_throughput, gen_server_call, gen_server_call_2c,
     call_timeout_storm, supervisor_restart, task_async_await,
     async_stream, factorial_chunks].

%% {Full, Quick}
size_of(ping_pong)          -> {1000000, 10000};
size_of(thread_ring)        -> {10000000, 100000};
size_of(spawn)              -> {1000000, 10000};
size_of(spawn_idle_servers) -> {1000000, 10000};
size_of(fork_join)          -> {1000000, 10000};
size_of(send_throughput)    -> {1000000, 10000};   % per sender
size_of(gen_server_call)    -> {1000000, 10000};
size_of(gen_server_call_2c) -> {500000, 5000};     % per client
size_of(call_timeout_storm) -> {10000, 1000};
size_of(supervisor_restart) -> {100000, 1000};
size_of(task_async_await)   -> {1000000, 10000};
size_of(async_stream)       -> {1000000, 10000};
size_of(factorial_chunks)   -> {100, 5}.          % rounds

main() ->
    Code = try
               Opts = parse_args(init:get_plain_arguments(),
                                 #{only => all, repeat => 1,
                                   quick => false, list => false}),
               run(Opts)
           catch
               throw:{usage, Msg} ->
                   io:format(standard_error, "hive_peer: ~s~n"
                             "usage: hive_peer [--only NAME[,NAME...]] [--repeat N] "
                             "[--quick] [--list]~n", [Msg]),
                   2
           end,
    erlang:halt(Code).

parse_args([], Opts) -> Opts;
parse_args(["--only", Names | Rest], Opts) ->
    Only = [case [W || W <- workloads(), atom_to_list(W) =:= Name] of
                [W] -> W;
                [] -> throw({usage, "unknown workload: " ++ Name})
            end || Name <- string:lexemes(Names, ",")],
    Only =/= [] orelse throw({usage, "--only needs a workload name"}),
    parse_args(Rest, Opts#{only := Only});
parse_args(["--repeat", N | Rest], Opts) ->
    case catch list_to_integer(N) of
        R when is_integer(R), R > 0 -> parse_args(Rest, Opts#{repeat := R});
        _ -> throw({usage, "bad --repeat value: " ++ N})
    end;
parse_args(["--quick" | Rest], Opts) -> parse_args(Rest, Opts#{quick := true});
parse_args(["--list" | Rest], Opts) -> parse_args(Rest, Opts#{list := true});
parse_args(["--json" | Rest], Opts) -> parse_args(Rest, Opts);
parse_args([Other | _], _) -> throw({usage, "unknown argument: " ++ Other}).

run(#{list := true}) ->
    [io:format("~s~n", [W]) || W <- workloads()],
    0;
run(#{only := Only, repeat := Repeat, quick := Quick}) ->
    Selected = case Only of
                   all -> workloads();
                   Names -> [W || W <- workloads(), lists:member(W, Names)]
               end,
    lists:foreach(
      fun(W) ->
              {Full, Small} = size_of(W),
              Size = case Quick of true -> Small; false -> Full end,
              [emit(W, run_one(W, Size)) || _ <- lists:seq(1, Repeat)]
      end, Selected),
    0.

%% Each run happens in a fresh process, so that its heap, its mailbox
%% and anything it leaves behind do not leak into the next run.
run_one(W, Size) ->
    erlang:garbage_collect(),
    Parent = self(),
    {Pid, Ref} =
        spawn_monitor(
          fun() ->
                  R = try run_bench(W, Size)
                      catch
                          throw:{fail, Msg} ->
                              #{ok => false, error => Msg};
                          C:E:St ->
                              #{ok => false,
                                error => io_lib:format("~p:~0p ~0p",
                                                       [C, E, hd(St ++ [none])])}
                      end,
                  Parent ! {self(), result, R}
          end),
    receive
        {Pid, result, R} ->
            erlang:demonitor(Ref, [flush]),
            R;
        {'DOWN', Ref, process, Pid, Reason} ->
            #{ok => false, error => io_lib:format("crashed: ~0p", [Reason])}
    end.

%%--------------------------------------------------------------------
%% Workloads. Each returns a map with at least n, ns, unit, ok.
%%--------------------------------------------------------------------

run_bench(W, N) when W =:= supervisor_restart; W =:= task_async_await;
                     W =:= async_stream; W =:= factorial_chunks ->
    otp_bench(W, N);
run_bench(W, N) ->
    bench(W, N).

%% 1. Two processes bounce a message n times.
bench(ping_pong, N) ->
    Pong = spawn(fun() -> pong(0) end),
    T0 = now_ns(),
    ping(Pong, N),
    T1 = now_ns(),
    Pong ! {stop, self()},
    Count = receive {stopped, C} -> C after ?WAIT_MS -> fail("ponger did not stop") end,
    check(Count =:= N, "ponger saw ~p round trips, expected ~p", [Count, N]),
    #{n => N, ns => T1 - T0, unit => round_trips, ok => true};

%% 2. A token with a countdown travels n hops around a ring of 503.
bench(thread_ring, N) ->
    Self = self(),
    Nodes = [spawn(fun() -> receive {next, Next} -> ring(Id, Next, Self) end end)
             || Id <- lists:seq(1, ?RING_SIZE)],
    [First | _] = Nodes,
    lists:foreach(fun({P, Next}) -> P ! {next, Next} end,
                  lists:zip(Nodes, tl(Nodes) ++ [First])),
    T0 = now_ns(),
    First ! N,
    Holder = receive {ring_done, Id} -> Id after ?WAIT_MS -> fail("token lost") end,
    T1 = now_ns(),
    First ! stop,
    Expected = (N rem ?RING_SIZE) + 1,
    check(Holder =:= Expected,
          "token ran out at process ~p, expected ~p", [Holder, Expected]),
    #{n => N, ns => T1 - T0, unit => hops, ok => true};

%% 3. Spawn n processes that each block in receive.
bench(spawn, N) ->
    Self = self(),
    R0 = rss_bytes(),
    T0 = now_ns(),
    Pids = spawn_waiters(N, Self, []),
    T1 = now_ns(),
    R1 = rss_bytes(),
    lists:foreach(fun(P) -> P ! go end, Pids),
    Done = count_done(N, 0),
    check(Done =:= N, "~p of ~p processes finished", [Done, N]),
    #{n => N, ns => T1 - T0, unit => processes, ok => true,
      bytes_per_proc => per_proc(R1 - R0, N)};

%% 4. Start n idle gen_servers.
bench(spawn_idle_servers, N) ->
    R0 = rss_bytes(),
    T0 = now_ns(),
    Servers = start_idle(N, []),
    T1 = now_ns(),
    R1 = rss_bytes(),
    Tuple = list_to_tuple(Servers),
    Bad = [I || I <- lists:seq(1, N, 1000),
                gen_server:call(element(I, Tuple), whoami) =/= I],
    lists:foreach(fun(S) -> gen_server:stop(S) end, Servers),
    check(Bad =:= [], "~p servers answered wrongly", [length(Bad)]),
    #{n => N, ns => T1 - T0, unit => servers, ok => true,
      bytes_per_proc => per_proc(R1 - R0, N)};

%% 5. Spawn n tasks, each sends i*2+1 to the parent, which sums them.
bench(fork_join, N) ->
    Self = self(),
    T0 = now_ns(),
    fork(0, N, Self),
    Sum = join(N, 0),
    T1 = now_ns(),
    check(Sum =:= N * N, "sum ~p, expected ~p", [Sum, N * N]),
    #{n => N, ns => T1 - T0, unit => tasks, ok => true};

%% 6. Four senders flood one receiver with small integers.
bench(send_throughput, PerSender) ->
    Self = self(),
    Total = ?SENDERS * PerSender,
    T0 = now_ns(),
    Recv = spawn(fun() -> receiver(?SENDERS, 0, 0, Self) end),
    [spawn(fun() -> sender(Recv, PerSender) end) || _ <- lists:seq(1, ?SENDERS)],
    {Count, Sum} = receive {received, C, S} -> {C, S}
                   after ?WAIT_MS -> fail("receiver did not finish")
                   end,
    T1 = now_ns(),
    ExpSum = ?SENDERS * (PerSender * (PerSender + 1) div 2),
    check(Count =:= Total andalso Sum =:= ExpSum,
          "received ~p messages summing to ~p, expected ~p and ~p",
          [Count, Sum, Total, ExpSum]),
    #{n => Total, ns => T1 - T0, unit => messages, ok => true};

%% 7. One client, n sequential gen_server:call/2 to a counter.
bench(gen_server_call, N) ->
    {ok, S} = gen_server:start(?MODULE, {counter, 0}, []),
    T0 = now_ns(),
    Lats = call_loop(S, N, []),
    T1 = now_ns(),
    Final = gen_server:call(S, get),
    gen_server:stop(S),
    check(Final =:= N, "counter is ~p, expected ~p", [Final, N]),
    maps:merge(#{n => N, ns => T1 - T0, unit => calls, ok => true},
               percentiles(Lats, N));

%% 8. Two clients calling the same counter concurrently.
bench(gen_server_call_2c, PerClient) ->
    Self = self(),
    N = 2 * PerClient,
    {ok, S} = gen_server:start(?MODULE, {counter, 0}, []),
    T0 = now_ns(),
    Clients = [spawn(fun() ->
                             L = call_loop(S, PerClient, []),
                             Self ! {client_done, self(), now_ns(), L}
                     end) || _ <- [1, 2]],
    Results = [receive {client_done, C, TEnd, L} -> {TEnd, L}
               after ?WAIT_MS -> fail("client did not finish")
               end || C <- Clients],
    T1 = lists:max([TEnd || {TEnd, _} <- Results]),
    Final = gen_server:call(S, get),
    gen_server:stop(S),
    check(Final =:= N, "counter is ~p, expected ~p", [Final, N]),
    Lats = lists:append([L || {_, L} <- Results]),
    maps:merge(#{n => N, ns => T1 - T0, unit => calls, ok => true},
               percentiles(Lats, N));

%% 9. n clients each call once with a 5 ms timeout; the server answers
%% every request 20 ms later, so every call times out and every reply
%% is late. OTP 25's gen_server:call uses an alias that is deactivated
%% on timeout, so late replies should be dropped by the runtime; the
%% clients stay alive until all replies are sent and then count what
%% is left in their mailboxes.
bench(call_timeout_storm, N) ->
    Self = self(),
    {ok, S} = gen_server:start(?MODULE, {storm, Self, N}, []),
    T0 = now_ns(),
    Clients = [spawn(fun() -> storm_client(S, Self) end) || _ <- lists:seq(1, N)],
    {Timeouts, Replied} = storm_wait(N, 0, 0, false),
    T1 = now_ns(),
    %% Server-to-client order is kept, so once a client sees this marker
    %% from the server every reply the server sent it is either in its
    %% mailbox or was dropped.
    S ! {count_leftover, Clients, Self},
    Leftover = sum_msgs(N, 0),
    gen_server:stop(S),
    ElapsedMs = (T1 - T0) / 1.0e6,
    check(Replied, "server did not send all replies", []),
    check(Timeouts =:= N, "~p of ~p calls timed out", [Timeouts, N]),
    #{n => N, ns => T1 - T0, unit => calls, ok => true,
      timeouts => Timeouts, late_dropped => N - Leftover,
      leftover => Leftover, elapsed_ms => ElapsedMs}.

%%--------------------------------------------------------------------
%% Workload helpers
%%--------------------------------------------------------------------

%% Supervisors and tasks: the real supervisor module, and tasks the way
%% Elixir's Task does them (spawn_link + monitor, reply {Ref, Result},
%% demonitor with flush).

otp_bench(supervisor_restart, N) ->
    %% Every crash would print a crash report and a supervisor report.
    logger:set_primary_config(level, none),
    {ok, Sup} = supervisor:start_link(?MODULE, {sr_sup, self(), N}),
    W0 = receive {sr_started, P} -> P after ?WAIT_MS -> throw({fail, "no worker"}) end,
    T0 = now_ns(),
    W = sr_loop(W0, N),
    T1 = now_ns(),
    [{worker, Listed, worker, _}] = supervisor:which_children(Sup),
    unlink(Sup),
    exit(Sup, shutdown),
    logger:set_primary_config(level, notice),
    check(Listed =:= W, "the supervisor lists ~p, not ~p", [Listed, W]),
    #{n => N, ns => T1 - T0, unit => restarts, ok => true};

otp_bench(task_async_await, N) ->
    T0 = now_ns(),
    Sum = task_batches(0, N, 0),
    T1 = now_ns(),
    check(Sum =:= N * N, "sum ~p, expected ~p", [Sum, N * N]),
    #{n => N, ns => T1 - T0, unit => tasks, ok => true};

otp_bench(async_stream, N) ->
    MaxC = erlang:system_info(schedulers_online),
    T0 = now_ns(),
    {Got, Sum, Rss10} = stream_run(N, MaxC),
    T1 = now_ns(),
    check(Got =:= N andalso Sum =:= N * N, "~p items, sum ~p", [Got, Sum]),
    #{n => N, ns => T1 - T0, unit => items, ok => true,
      peak_rss_mb => peak_rss_bytes() / 1048576, rss_at_10pct_mb => Rss10 / 1048576,
      rss_at_end_mb => rss_bytes() / 1048576};

otp_bench(factorial_chunks, Rounds) ->
    T0 = now_ns(),
    Digits = fact_rounds(Rounds, 0),
    T1 = now_ns(),
    check(Digits =:= 35660, "10000! has ~p digits, not 35660", [Digits]),
    #{n => Rounds, ns => T1 - T0, unit => rounds, ok => true, digits => Digits}.

sr_loop(W, 0) -> W;
sr_loop(W, K) ->
    gen_server:cast(W, crash),
    receive
        {sr_started, W} -> throw({fail, "a restart gave the same pid"});
        {sr_started, W1} -> sr_loop(W1, K - 1)
    after ?WAIT_MS -> throw({fail, "no restart"})
    end.

start_sr_worker(Client) -> gen_server:start_link(?MODULE, {sr_worker, Client}, []).

task_async(Fun) ->
    Owner = self(),
    Ref = make_ref(),
    {Pid, MRef} = spawn_opt(fun() -> Owner ! {Ref, Fun()} end, [link, monitor]),
    {Pid, Ref, MRef}.

task_await({_Pid, Ref, MRef}) ->
    receive
        {Ref, Result} -> erlang:demonitor(MRef, [flush]), Result;
        {'DOWN', MRef, process, _, Reason} -> throw({fail, io_lib:format("task: ~p", [Reason])})
    after ?WAIT_MS -> throw({fail, "task timed out"})
    end.

task_batches(I, N, Sum) when I >= N -> Sum;
task_batches(I, N, Sum) ->
    K = min(1000, N - I),
    Tasks = [task_async(fun() -> X * 2 + 1 end) || X <- lists:seq(I, I + K - 1)],
    task_batches(I + K, N, lists:foldl(fun(T, Acc) -> Acc + task_await(T) end, Sum, Tasks)).

%% Task.async_stream, ordered, max_concurrency = schedulers: the next item
%% starts when the consumer has taken the oldest result.
stream_run(N, MaxC) ->
    First = min(N, MaxC),
    Q = queue:from_list([task_async(fun() -> X * 2 + 1 end) || X <- lists:seq(0, First - 1)]),
    stream_loop(Q, First, N, 0, 0, 0).

stream_loop(Q, Next, N, Got, Sum, Rss10) ->
    case queue:out(Q) of
        {empty, _} -> {Got, Sum, Rss10};
        {{value, T}, Q1} ->
            V = task_await(T),
            V =:= Got * 2 + 1 orelse throw({fail, "out of order"}),
            Got1 = Got + 1,
            Rss = case Got1 =:= N div 10 of true -> rss_bytes(); false -> Rss10 end,
            Q2 = case Next < N of
                     true -> X = Next, queue:in(task_async(fun() -> X * 2 + 1 end), Q1);
                     false -> Q1
                 end,
            stream_loop(Q2, min(Next + 1, N), N, Got1, Sum + V, Rss)
    end.

fact_rounds(0, Digits) -> Digits;
fact_rounds(K, _) ->
    Tasks = [task_async(fun() -> chunk_product(C * 10 + 1, C * 10 + 10) end)
             || C <- lists:seq(0, 999)],
    F = lists:foldl(fun(T, Acc) -> Acc * task_await(T) end, 1, Tasks),
    fact_rounds(K - 1, length(integer_to_list(F))).

chunk_product(A, B) -> lists:foldl(fun(X, Acc) -> X * Acc end, 1, lists:seq(A, B)).

peak_rss_bytes() ->
    {ok, Bin} = file:read_file("/proc/self/status"),
    {match, [KB]} = re:run(Bin, "VmHWM:\\s+(\\d+)", [{capture, all_but_first, binary}]),
    binary_to_integer(KB) * 1024.

ping(_, 0) -> ok;
ping(Pong, K) ->
    Pong ! {ping, self()},
    receive pong -> ping(Pong, K - 1) end.

pong(C) ->
    receive
        {ping, From} -> From ! pong, pong(C + 1);
        {stop, From} -> From ! {stopped, C}
    end.

ring(Id, Next, Parent) ->
    receive
        0 -> Parent ! {ring_done, Id}, ring(Id, Next, Parent);
        T when is_integer(T) -> Next ! T - 1, ring(Id, Next, Parent);
        stop -> Next ! stop
    end.

spawn_waiters(0, _, Acc) -> Acc;
spawn_waiters(K, Parent, Acc) ->
    P = spawn(fun() -> receive go -> Parent ! done end end),
    spawn_waiters(K - 1, Parent, [P | Acc]).

start_idle(0, Acc) -> Acc;
start_idle(K, Acc) ->
    {ok, S} = gen_server:start(?MODULE, {idle, K}, []),
    start_idle(K - 1, [S | Acc]).

fork(N, N, _) -> ok;
fork(I, N, Parent) ->
    spawn(fun() -> Parent ! {task, I * 2 + 1} end),
    fork(I + 1, N, Parent).

join(0, Sum) -> Sum;
join(K, Sum) ->
    receive {task, V} -> join(K - 1, Sum + V)
    after ?WAIT_MS -> throw({fail, "timed out joining tasks"})
    end.

sender(Recv, 0) -> Recv ! sender_done;
sender(Recv, K) -> Recv ! K, sender(Recv, K - 1).

receiver(0, Count, Sum, Parent) -> Parent ! {received, Count, Sum};
receiver(Live, Count, Sum, Parent) ->
    receive
        K when is_integer(K) -> receiver(Live, Count + 1, Sum + K, Parent);
        sender_done -> receiver(Live - 1, Count, Sum, Parent)
    end.

%% One clock read per call, as in hive-bench: a call's latency runs from the
%% end of the previous call to its own end.
call_loop(S, K, Acc) -> call_loop(S, K, now_ns(), Acc).

call_loop(_, 0, _, Acc) -> Acc;
call_loop(S, K, A, Acc) ->
    _ = gen_server:call(S, incr),
    B = now_ns(),
    call_loop(S, K - 1, B, [B - A | Acc]).

storm_client(S, Parent) ->
    R = try gen_server:call(S, req, ?STORM_CALL_TIMEOUT_MS) of
            _ -> replied
        catch
            exit:{timeout, _} -> timeout
        end,
    Parent ! {storm, R},
    receive
        {count_leftover, To} ->
            {message_queue_len, L} = process_info(self(), message_queue_len),
            To ! {leftover, L}
    end.

storm_wait(0, Timeouts, _, true) -> {Timeouts, true};
storm_wait(Left, Timeouts, Done, Replied) ->
    receive
        {storm, timeout} -> storm_wait(Left - 1, Timeouts + 1, Done + 1, Replied);
        {storm, replied} -> storm_wait(Left - 1, Timeouts, Done + 1, Replied);
        all_replied -> storm_wait(Left, Timeouts, Done, true)
    after ?WAIT_MS -> {Timeouts, Replied}
    end.

sum_msgs(0, Acc) -> Acc;
sum_msgs(K, Acc) ->
    receive {leftover, L} -> sum_msgs(K - 1, Acc + L)
    after ?WAIT_MS -> throw({fail, "timed out counting leftovers"})
    end.

count_done(0, C) -> C;
count_done(K, C) ->
    receive done -> count_done(K - 1, C + 1)
    after ?WAIT_MS -> C
    end.

fail(Msg) -> throw({fail, Msg}).

check(true, _, _) -> ok;
check(false, Fmt, Args) -> throw({fail, io_lib:format(Fmt, Args)}).

percentiles(Lats, N) ->
    T = list_to_tuple(lists:sort(Lats)),
    Len = tuple_size(T),
    Len =:= N orelse throw({fail, io_lib:format("~p latencies for ~p calls", [Len, N])}),
    P = fun(Q) -> element(max(1, min(Len, ceil(Q * Len))), T) / 1000 end,
    #{p50_us => P(0.50), p99_us => P(0.99), p999_us => P(0.999)}.

per_proc(Bytes, N) -> round(Bytes / N).

now_ns() -> erlang:monotonic_time(nanosecond).

rss_bytes() ->
    {ok, Bin} = file:read_file("/proc/self/status"),
    {match, [KB]} = re:run(Bin, "VmRSS:\\s+(\\d+)", [{capture, all_but_first, binary}]),
    binary_to_integer(KB) * 1024.

%%--------------------------------------------------------------------
%% gen_server callbacks: one module, three kinds of server.
%%--------------------------------------------------------------------

init({sr_sup, Client, N}) ->
    %% supervisor:start_link(?MODULE, ...) calls this as the supervisor's init
    {ok, {#{strategy => one_for_one, intensity => N + 1, period => 1},
          [#{id => worker, start => {?MODULE, start_sr_worker, [Client]},
             restart => permanent, type => worker}]}};
init({sr_worker, Client}) ->
    Client ! {sr_started, self()},
    {ok, {sr_worker, Client}};
init({idle, Id}) -> {ok, {idle, Id}};
init({counter, C}) -> {ok, {counter, C}};
init({storm, Parent, N}) -> {ok, {storm, Parent, N, 0}}.

handle_call(whoami, _From, {idle, Id} = St) -> {reply, Id, St};
handle_call(incr, _From, {counter, C}) -> {reply, C + 1, {counter, C + 1}};
handle_call(get, _From, {counter, C} = St) -> {reply, C, St};
handle_call(req, From, {storm, _, _, _} = St) ->
    erlang:send_after(?STORM_REPLY_DELAY_MS, self(), {reply_to, From}),
    {noreply, St}.

handle_cast(crash, {sr_worker, _} = St) -> {stop, crash, St};
handle_cast(_Msg, St) -> {noreply, St}.

handle_info({reply_to, From}, {storm, Parent, N, Sent}) ->
    gen_server:reply(From, late),
    Sent1 = Sent + 1,
    Sent1 =:= N andalso (Parent ! all_replied),
    {noreply, {storm, Parent, N, Sent1}};
handle_info({count_leftover, Clients, To}, St) ->
    lists:foreach(fun(C) -> C ! {count_leftover, To} end, Clients),
    {noreply, St};
handle_info(_Msg, St) -> {noreply, St}.

terminate(_Reason, _St) -> ok.

code_change(_Old, St, _Extra) -> {ok, St}.

%%--------------------------------------------------------------------
%% JSON line output
%%--------------------------------------------------------------------

emit(W, R) ->
    Ns = maps:get(ns, R, 0),
    N = maps:get(n, R, 0),
    Secs = Ns / 1.0e9,
    Rate = case Secs > 0 of true -> N / Secs; false -> 0.0 end,
    Ok = maps:get(ok, R, false),
    Base = [{runtime, {str, "erlang"}},
            {bench, {str, atom_to_list(W)}},
            {n, N},
            {seconds, {f, 6, Secs}},
            {rate_per_s, {f, 1, Rate}},
            {unit, {str, atom_to_list(maps:get(unit, R, unit_of(W)))}},
            {ok, Ok},
            {schedulers, erlang:system_info(schedulers_online)}],
    Extra = [{K, fmt_extra(K, maps:get(K, R))}
             || K <- [bytes_per_proc, p50_us, p99_us, p999_us, timeouts,
                      late_dropped, leftover, elapsed_ms, peak_rss_mb,
                      rss_at_10pct_mb, rss_at_end_mb, digits],
                maps:is_key(K, R)],
    Err = case maps:find(error, R) of
              {ok, E} -> [{error, {str, lists:flatten(io_lib:format("~s", [E]))}}];
              error -> []
          end,
    Fields = Base ++ Extra ++ Err,
    io:put_chars([${,
                  lists:join($,, [[$", atom_to_list(K), $", $:, json(V)] || {K, V} <- Fields]),
                  $}, $\n]).

unit_of(ping_pong) -> round_trips;
unit_of(thread_ring) -> hops;
unit_of(spawn) -> processes;
unit_of(spawn_idle_servers) -> servers;
unit_of(fork_join) -> tasks;
unit_of(send_throughput) -> messages;
unit_of(_) -> calls.

fmt_extra(K, V) when K =:= p50_us; K =:= p99_us; K =:= p999_us -> {f, 3, V};
fmt_extra(elapsed_ms, V) -> {f, 3, V};
fmt_extra(K, V) when K =:= peak_rss_mb; K =:= rss_at_10pct_mb; K =:= rss_at_end_mb -> {f, 1, V};
fmt_extra(_, V) -> V.

json(true) -> "true";
json(false) -> "false";
json(I) when is_integer(I) -> integer_to_list(I);
json({f, D, X}) -> float_to_list(float(X), [{decimals, D}, compact]);
json({str, S}) -> [$", escape(unicode:characters_to_list(S)), $"].

escape([]) -> [];
escape([$" | T]) -> [$\\, $" | escape(T)];
escape([$\\ | T]) -> [$\\, $\\ | escape(T)];
escape([C | T]) when C < 32 -> [io_lib:format("\\u~4.16.0b", [C]) | escape(T)];
escape([C | T]) -> [C | escape(T)].
