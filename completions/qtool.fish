# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_qtool_global_optspecs
    string join \n C/config= d/queue-dir= v/verbose q/quiet h/help V/version
end

function __fish_qtool_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_qtool_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_qtool_using_subcommand
    set -l cmd (__fish_qtool_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c qtool -n "__fish_qtool_needs_command" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_needs_command" -s d -l queue-dir -d 'Directory holding one directory per queue, or redis://HOST:PORT/DB (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_needs_command" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_needs_command" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qtool -n "__fish_qtool_needs_command" -s V -l version -d 'Print version'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "enqueue" -d 'Add messages to a queue'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "dequeue" -d 'Take the oldest (or a named) entry out of a queue'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "run-once" -d 'Recover, then drain a queue once through a handler (for cron)'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "run" -d 'Run a runner until stopped, or supervise all of them with --all'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "dump" -d 'Print an entry\'s metadata as Mailman\'s dump_msgdata does'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "list" -d 'List entries in FIFO order: state, age, size, list, From, Subject'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "stats" -d 'Per queue: entries by state, size, oldest age, and an age histogram'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "unshunt" -d 'Move shunted entries back to the queue they failed in (or discard them)'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "move" -d 'Move entries to another queue, metadata unchanged'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "delete" -d 'Delete entries (never one a runner is working on)'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "recover" -d 'Recover orphaned claimed entries (.bak) of crashed processes now'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "runners" -d 'List the configured runners and their handlers'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "completions" -d 'Print shell completions'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "man" -d 'Write the man pages (for packagers; the project ships them in man/)'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -s d -l queue-dir -d 'Directory holding one directory per queue, or redis://HOST:PORT/DB (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -l mbox -d 'Enqueue every message of an mbox file' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -l maildir -d 'Enqueue every message of a Maildir (cur/ and new/), leaving it in place' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -s m -l meta -d 'Metadata KEY=VALUE, VALUE read as YAML (n=3 is a number, r=[a, b] a list)' -r
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -l meta-file -d 'Metadata from a YAML mapping in FILE (-m wins over it)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -l plaintext -d 'Mark the entries as plain text (_parsemsg: true, Mailman\'s _plaintext)'
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -s h -l help -d 'Print help'
complete -c qtool -n "__fish_qtool_using_subcommand dequeue" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand dequeue" -s d -l queue-dir -d 'Directory holding one directory per queue, or redis://HOST:PORT/DB (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand dequeue" -s o -l output -d 'Write the message to FILE instead of standard output' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand dequeue" -l meta-out -d 'Write the metadata as YAML to FILE' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand dequeue" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand dequeue" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand dequeue" -s h -l help -d 'Print help'
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -s d -l queue-dir -d 'Directory holding one directory per queue, or redis://HOST:PORT/DB (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -l forward -d 'Handler: enqueue each entry to QUEUE' -r
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -l log-file -d 'Log to FILE instead of standard error (reopened on SIGHUP)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -l grace -d 'After a stop, how long a running handler may go on before it is killed and its entry put back' -r
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -l discard -d 'Handler: drop each entry'
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -s h -l help -d 'Print help'
complete -c qtool -n "__fish_qtool_using_subcommand run" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand run" -s d -l queue-dir -d 'Directory holding one directory per queue, or redis://HOST:PORT/DB (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand run" -l forward -d 'Handler: enqueue each entry to QUEUE' -r
complete -c qtool -n "__fish_qtool_using_subcommand run" -l log-file -d 'Log to FILE instead of standard error (reopened on SIGHUP)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand run" -l grace -d 'After a stop, how long a running handler may go on before it is killed and its entry put back' -r
complete -c qtool -n "__fish_qtool_using_subcommand run" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand run" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand run" -l all -d 'Supervise every runner of the config with `start: true`'
complete -c qtool -n "__fish_qtool_using_subcommand run" -l discard -d 'Handler: drop each entry'
complete -c qtool -n "__fish_qtool_using_subcommand run" -s h -l help -d 'Print help'
complete -c qtool -n "__fish_qtool_using_subcommand dump" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand dump" -s d -l queue-dir -d 'Directory holding one directory per queue, or redis://HOST:PORT/DB (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand dump" -l skip -d 'Hide KEY too (repeatable)' -r
complete -c qtool -n "__fish_qtool_using_subcommand dump" -l format -d 'Output format' -r -f -a "text\t'Mailman\'s dump_msgdata: sorted, padded `key: value` lines'
yaml\t''
json\t''"
complete -c qtool -n "__fish_qtool_using_subcommand dump" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand dump" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand dump" -l message -d 'Print the message after the metadata'
complete -c qtool -n "__fish_qtool_using_subcommand dump" -l all -d 'Show every key, received_time included'
complete -c qtool -n "__fish_qtool_using_subcommand dump" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qtool -n "__fish_qtool_using_subcommand list" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand list" -s d -l queue-dir -d 'Directory holding one directory per queue, or redis://HOST:PORT/DB (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand list" -l older-than -d 'Only entries older than AGE (e.g. 30m, 2h, 1d)' -r
complete -c qtool -n "__fish_qtool_using_subcommand list" -l listid -d 'Only entries for this list id' -r
complete -c qtool -n "__fish_qtool_using_subcommand list" -l from -d 'Only entries whose From contains TEXT (any case)' -r
complete -c qtool -n "__fish_qtool_using_subcommand list" -l subject -d 'Only entries whose Subject contains TEXT (any case)' -r
complete -c qtool -n "__fish_qtool_using_subcommand list" -l format -d 'Output format' -r -f -a "table\t'Aligned columns (a bordered table on a terminal)'
json\t'One JSON array of objects with stable field names'
names\t'Filebases only, one per line'"
complete -c qtool -n "__fish_qtool_using_subcommand list" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand list" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qtool -n "__fish_qtool_using_subcommand stats" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand stats" -s d -l queue-dir -d 'Directory holding one directory per queue, or redis://HOST:PORT/DB (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand stats" -l format -d 'Output format' -r -f -a "table\t'Aligned columns (a bordered table on a terminal)'
json\t'JSON'"
complete -c qtool -n "__fish_qtool_using_subcommand stats" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand stats" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand stats" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qtool -n "__fish_qtool_using_subcommand unshunt" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand unshunt" -s d -l queue-dir -d 'Directory holding one directory per queue, or redis://HOST:PORT/DB (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand unshunt" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand unshunt" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand unshunt" -l discard -d 'Delete them instead'
complete -c qtool -n "__fish_qtool_using_subcommand unshunt" -s h -l help -d 'Print help'
complete -c qtool -n "__fish_qtool_using_subcommand move" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand move" -s d -l queue-dir -d 'Directory holding one directory per queue, or redis://HOST:PORT/DB (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand move" -l to -d 'The queue to move them to' -r
complete -c qtool -n "__fish_qtool_using_subcommand move" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand move" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand move" -s h -l help -d 'Print help'
complete -c qtool -n "__fish_qtool_using_subcommand delete" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand delete" -s d -l queue-dir -d 'Directory holding one directory per queue, or redis://HOST:PORT/DB (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand delete" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand delete" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand delete" -s h -l help -d 'Print help'
complete -c qtool -n "__fish_qtool_using_subcommand recover" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand recover" -s d -l queue-dir -d 'Directory holding one directory per queue, or redis://HOST:PORT/DB (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand recover" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand recover" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand recover" -s h -l help -d 'Print help'
complete -c qtool -n "__fish_qtool_using_subcommand runners" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand runners" -s d -l queue-dir -d 'Directory holding one directory per queue, or redis://HOST:PORT/DB (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand runners" -l format -d 'Output format' -r -f -a "table\t'Aligned columns (a bordered table on a terminal)'
json\t'JSON'"
complete -c qtool -n "__fish_qtool_using_subcommand runners" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand runners" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand runners" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qtool -n "__fish_qtool_using_subcommand completions" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand completions" -s d -l queue-dir -d 'Directory holding one directory per queue, or redis://HOST:PORT/DB (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand completions" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand completions" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand completions" -s h -l help -d 'Print help'
complete -c qtool -n "__fish_qtool_using_subcommand man" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand man" -s d -l queue-dir -d 'Directory holding one directory per queue, or redis://HOST:PORT/DB (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand man" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand man" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand man" -s h -l help -d 'Print help'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump list stats unshunt move delete recover runners completions man help" -f -a "enqueue" -d 'Add messages to a queue'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump list stats unshunt move delete recover runners completions man help" -f -a "dequeue" -d 'Take the oldest (or a named) entry out of a queue'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump list stats unshunt move delete recover runners completions man help" -f -a "run-once" -d 'Recover, then drain a queue once through a handler (for cron)'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump list stats unshunt move delete recover runners completions man help" -f -a "run" -d 'Run a runner until stopped, or supervise all of them with --all'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump list stats unshunt move delete recover runners completions man help" -f -a "dump" -d 'Print an entry\'s metadata as Mailman\'s dump_msgdata does'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump list stats unshunt move delete recover runners completions man help" -f -a "list" -d 'List entries in FIFO order: state, age, size, list, From, Subject'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump list stats unshunt move delete recover runners completions man help" -f -a "stats" -d 'Per queue: entries by state, size, oldest age, and an age histogram'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump list stats unshunt move delete recover runners completions man help" -f -a "unshunt" -d 'Move shunted entries back to the queue they failed in (or discard them)'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump list stats unshunt move delete recover runners completions man help" -f -a "move" -d 'Move entries to another queue, metadata unchanged'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump list stats unshunt move delete recover runners completions man help" -f -a "delete" -d 'Delete entries (never one a runner is working on)'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump list stats unshunt move delete recover runners completions man help" -f -a "recover" -d 'Recover orphaned claimed entries (.bak) of crashed processes now'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump list stats unshunt move delete recover runners completions man help" -f -a "runners" -d 'List the configured runners and their handlers'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump list stats unshunt move delete recover runners completions man help" -f -a "completions" -d 'Print shell completions'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump list stats unshunt move delete recover runners completions man help" -f -a "man" -d 'Write the man pages (for packagers; the project ships them in man/)'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump list stats unshunt move delete recover runners completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
