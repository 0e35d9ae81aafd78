@echo off
rem Fake Stable Diffusion WebUI launcher for Windows (cmd.exe).
rem Modeled on AUTOMATIC1111's webui.bat: cmd.exe stays the parent of Python and
rem relaunches it for as long as launch.py leaves tmp\restart behind
rem (POST /sdapi/v1/server-restart). Shipped and documented; not run on Linux.

setlocal

if not defined PYTHON (set PYTHON=python)

rem %~dp0 is this script's folder with a trailing backslash; "." makes it a clean path.
set "SCRIPT_DIR=%~dp0."
set "STATE_DIR=%~dp0."
rem Separate state per instance/test, same variable launch.py honours.
if defined FAKE_WEBUI_STATE_DIR set "STATE_DIR=%FAKE_WEBUI_STATE_DIR%"
set "RESTART_FILE=%STATE_DIR%\tmp\restart"

rem A1111 sets this so launch.py knows a wrapper will relaunch it.
set SD_WEBUI_RESTART=tmp/restart

:launch
if exist "%RESTART_FILE%" del /f /q "%RESTART_FILE%"
echo Launching launch.py...
rem Not "start": cmd.exe waits here as the parent of Python.
"%PYTHON%" -u "%SCRIPT_DIR%\launch.py" %*
set EXIT_CODE=%ERRORLEVEL%
rem Plain gotos rather than a ( ) block: a path with ")" in it cannot break the script.
if not exist "%RESTART_FILE%" goto :done
echo Restarting: found %RESTART_FILE%, launch.py exited %EXIT_CODE%
goto :launch

:done

rem The real webui.bat ends with "pause" here; a supervised fake must not wait for a key.
exit /b %EXIT_CODE%
