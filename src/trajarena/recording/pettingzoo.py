"""Recording PettingZoo parallel envs: one trajectory stream per agent, each replayable on its own.

:class:`ParallelTrajectoryRecorder` wraps any PettingZoo ``ParallelEnv`` (it is one itself, and
passes ``parallel_api_test``) and gives every agent its own :class:`~trajarena.format.writer.TrajectoryWriter`
in ``file_path/<agent>/``: the agent's observations, actions, rewards, termination and truncation
and info, with its own observation and action spaces. An agent's episode starts when it first
appears (at ``reset`` or later) and ends when it terminates or is truncated, so agents that leave
early (pistonball's, a knocked-out fighter) end their episodes there, and rewards need not be
zero-sum. Every file stores, under ``multi_agent``, the agent's name, all possible agents and a
session id shared by the agents of one recording (so their streams can be joined step by step:
their ``step`` indexes agree while both are alive).

So one folder per agent replays that agent: ``ImitationLearning("data/rps/player_0")``,
``TrajectoryDataset("data/rps/player_1")``; the whole folder replays every agent when they
share spaces (parameter sharing). Rewards and flags are the agent's own: nothing is negated.
Agent names become folder names with any character other than letters, digits, ``_``, ``-``
and ``.`` replaced by ``_``.

>>> import tempfile, pettingzoo
>>> folder = tempfile.mkdtemp()
>>> rps = pettingzoo.make("parallel", "classic/rps-v2", max_cycles=3)
>>> env = ParallelTrajectoryRecorder(rps, folder, username="bots")
>>> obs, infos = env.reset(seed=0)
>>> while env.agents:
...     obs, rewards, terms, truncs, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
>>> env.close()
>>> sorted(p.parent.name for p in env.files)
['player_0', 'player_1']
>>> from trajarena.format.reader import TrajectoryReader
>>> TrajectoryReader(f"{folder}/player_1").metadata["multi_agent"]["agent"]
'player_1'
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any

from trajarena.errors import NotSupportedError, SettingsError, require
from trajarena.format.writer import TrajectoryWriter
from trajarena.recording.recorder import settings_to_json

require("pettingzoo", "pettingzoo", "Recording PettingZoo envs")

from pettingzoo.utils.wrappers import BaseParallelWrapper  # noqa: E402  (after the check that names the extra)

__all__ = ["ParallelTrajectoryRecorder", "agent_folder"]


def agent_folder(agent: Any) -> str:
    """The folder name of an agent's stream.

    >>> agent_folder("piston_0"), agent_folder("first/0"), agent_folder("..")
    ('piston_0', 'first_0', '_.')
    """
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(agent)) or "_"
    return "_" + name[1:] if name.startswith(".") else name


class ParallelTrajectoryRecorder(BaseParallelWrapper):
    """Record every agent of a PettingZoo parallel env into its own trajectory files.

    Args:
        env: a PettingZoo ``ParallelEnv``.
        file_path: the folder; each agent writes to ``file_path/<agent>/``.
        username: who played (stored).
        env_id: stored env id (default: the env's ``metadata["name"]``).
        env_settings: the env's settings (JSON data), stored.
        players: who controls each agent, e.g. ``{"player_0": "human"}``; stored.
        agents: record only these agents (default: all of ``possible_agents``).
        extra_metadata: more JSON-ready keys to store.
        **writer_options: passed to each :class:`~trajarena.format.writer.TrajectoryWriter`.

    Raises:
        SettingsError: an unknown agent in ``agents``, or two agents whose folder names collide.

    >>> import tempfile, pettingzoo
    >>> env = ParallelTrajectoryRecorder(pettingzoo.make("parallel", "classic/rps-v2"), tempfile.mkdtemp(),
    ...                                  agents=["player_0"])
    >>> list(env.writers), env.possible_agents
    (['player_0'], ['player_0', 'player_1'])
    >>> env.close()
    """

    def __init__(self, env: Any, file_path: str | os.PathLike, username: str = "", env_id: str | None = None,
                 env_settings: Any = None, players: dict[str, str] | None = None, agents: list[Any] | None = None,
                 extra_metadata: dict[str, Any] | None = None, **writer_options: Any) -> None:
        if not hasattr(env, "possible_agents"):
            raise NotSupportedError(f"{type(env).__name__} is not a PettingZoo parallel env (no possible_agents); "
                                    "record Gymnasium envs with TrajectoryRecorder.")
        super().__init__(env)
        possible = list(env.possible_agents)
        chosen = possible if agents is None else list(agents)
        unknown = [a for a in chosen if a not in possible]
        if unknown:
            raise SettingsError(f"agents {unknown} are not among the env's possible agents {possible}.")
        folders = {a: agent_folder(a) for a in chosen}
        if len(set(folders.values())) != len(folders):
            raise SettingsError(f"the agents {chosen} map to colliding folder names {sorted(folders.values())}.")
        from trajarena.settings import RecordingSettings

        rec = RecordingSettings.from_dict(dict(file_path=file_path, username=username, players=players, **writer_options))
        name = env_id or (getattr(env, "metadata", None) or {}).get("name") or type(env.unwrapped).__name__
        session = uuid.uuid4().hex
        base = {"env_id": str(name), "env_settings": settings_to_json(env_settings or {}, "env_settings"),
                "wrappers_settings": {}, "username": rec.username, "ignore_p1": 0, "ignore_p2": 0,
                "players": settings_to_json(rec.players or {}, "players"),
                **settings_to_json(extra_metadata or {}, "extra_metadata")}
        self.folder = Path(file_path)
        self.writers: dict[Any, TrajectoryWriter] = {}
        try:
            for agent in chosen:
                meta = {**base, "multi_agent": {"agent": str(agent), "agents": [str(a) for a in possible],
                                                "session": session}}
                self.writers[agent] = TrajectoryWriter(self.folder / folders[agent], env.observation_space(agent),
                                                       env.action_space(agent), meta, rec.writer_options())
        except BaseException:
            for w in self.writers.values():
                w.close()
            raise
        self._live: set[Any] = set()
        self._closed = False

    @classmethod
    def from_settings(cls, env: Any, recording: Any, env_id: str | None = None,
                      env_settings: Any = None) -> ParallelTrajectoryRecorder:
        """A recorder configured by :class:`~trajarena.settings.RecordingSettings` (or a dict of them).

        ``ignore_p1``/``ignore_p2`` mark sides of a two-player duel file; they have no meaning per agent
        and must be 0 here.
        """
        from trajarena.settings import RecordingSettings

        rec = RecordingSettings.from_dict(recording)
        if rec.ignore_p1 or rec.ignore_p2:
            raise SettingsError("ignore_p1/ignore_p2 do not apply to PettingZoo recordings: each agent has its own "
                                "files; replay only the agents you want (their folders).")
        return cls(env, rec.file_path, username=rec.username, players=rec.players, env_id=env_id,
                   env_settings=env_settings, **rec.writer_options())

    @property
    def files(self) -> list[Path]:
        """The finished files of all agents."""
        return sorted(p for w in self.writers.values() for p in w.files)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        obs, infos = self.env.reset(seed=seed, options=options)
        self._live = set()
        for agent, writer in self.writers.items():
            if agent in obs:
                writer.reset(obs[agent], _info(infos, agent), seed=seed)
                self._live.add(agent)
        return obs, infos

    def step(self, actions: dict[Any, Any]) -> tuple[dict, dict, dict, dict, dict]:
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        for agent, writer in self.writers.items():
            if agent in self._live and agent in actions and agent in obs:
                done = bool(terminations.get(agent, False) or truncations.get(agent, False))
                writer.step(actions[agent], obs[agent], float(rewards.get(agent, 0.0)),
                            bool(terminations.get(agent, False)), bool(truncations.get(agent, False)),
                            _info(infos, agent))
                if done:
                    self._live.discard(agent)
            elif agent not in self._live and agent in obs and agent in getattr(self.env, "agents", ()):
                writer.reset(obs[agent], _info(infos, agent))  # an agent that joined mid-episode
                self._live.add(agent)
        return obs, rewards, terminations, truncations, infos

    def discard_episode(self) -> bool:
        """Drop every agent's episode in progress; True if any was open."""
        self._live = set()
        return any([w.discard() for w in self.writers.values()])

    def close(self) -> None:
        """Save open episodes (as truncated), finish every file, close the env."""
        if self._closed:
            return
        self._closed = True
        errors = []
        for w in self.writers.values():
            try:
                w.close()
            except Exception as exc:  # noqa: BLE001 - close every writer, then raise the first error
                errors.append(exc)
        self.env.close()
        if errors:
            raise errors[0]


def _info(infos: Any, agent: Any) -> dict[str, Any]:
    info = infos.get(agent) if isinstance(infos, dict) else None
    return info if isinstance(info, dict) else {}
